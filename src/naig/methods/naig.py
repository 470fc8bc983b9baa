"""The NAIG method for one dialogue: plan, skeleton, then injections and refinement
alternating until every turn has been refined or the step budget is spent.

Returns the finished draft; verification and the record are the runner's business, so
every method shares them.
"""

from __future__ import annotations

from naig.stages.draft import Draft
from naig.stages.inject import choose_kinds, inject
from naig.stages.plan import plan
from naig.stages.refine import all_refined, refine_step
from naig.stages.skeleton import skeleton


async def run(d: Draft) -> Draft:
    await plan(d)
    await skeleton(d)
    pending = choose_kinds(d)
    step = 0
    while pending or (step < d.settings.refine_steps and not all_refined(d)):
        if pending:
            await inject(d, pending.pop(0))
        if step < d.settings.refine_steps and not all_refined(d):
            step += 1
            await refine_step(d, step)
    d.number_calls()
    return d
