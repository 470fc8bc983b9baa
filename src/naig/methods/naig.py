"""The NAIG method for one dialogue: plan, skeleton, then injections and refinement
alternating until every turn has been refined or the step budget is spent.

Returns the finished draft; verification and the record are the runner's business, so
every method shares them. After a failed verification the runner gives a NAIG dialogue a
bounded repair (``naig.stages.refine.repair``; see ``naig.methods.repairs``).
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
    for step in range(1, d.settings.refine_steps + 1):
        if pending:
            await inject(d, pending.pop(0))
        if all_refined(d):
            break
        await refine_step(d, step)  # costs nothing where nothing is worth masking
    for kind in pending:  # more injection types drawn than refinement steps
        await inject(d, kind)
    d.number_calls()
    return d
