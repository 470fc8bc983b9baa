"""Each rule check passes a good dialogue and rejects one crafted to break exactly it."""

import json

import pytest

from naig.dialogue import Message
from naig.stages import checks
from naig.stages.checks import RULES, no_instruction_echo
from naig.tools import Tool

from .conftest import TOOLS, call, good_dialogue, result


def _broken_roles() -> list[Message]:
    m = good_dialogue()
    return [*m, m[6].model_copy(update={"content": "And another thing entirely."})]


def _broken_ids() -> list[Message]:
    m = good_dialogue()
    m[3] = m[3].model_copy(update={"tool_call_id": "call_9"})
    return m


def _broken_names() -> list[Message]:
    m = good_dialogue()
    m[2] = call("call_1", "get_wether", city="Paris")
    return m


def _broken_arguments() -> list[Message]:
    m = good_dialogue()
    m[4] = call("call_2", "book_hotel", hotel_id="H-1001", nights="two")
    return m


def _broken_repetition() -> list[Message]:
    m = good_dialogue()
    loop = "It is 18 degrees; booked B-77. " + "I can help with that. " * 12
    m[6] = m[6].model_copy(update={"content": loop})
    return m


def _broken_grounding() -> list[Message]:
    m = good_dialogue()
    m[4] = call("call_2", "book_hotel", hotel_id="H-9999", nights=2)
    return m


def _broken_echo() -> list[Message]:
    m = good_dialogue()
    m[1] = m[1].model_copy(update={"content": m[1].content + " (that is subtask 1)"})
    return m


def _broken_action() -> list[Message]:
    m = good_dialogue()  # the weather only, then a booking claimed that no call made
    m[6] = m[6].model_copy(update={"content": "It is sunny in Paris, and I have booked "
                                              "your hotel."})
    return m[:4] + m[6:]


def _broken_claim() -> list[Message]:
    m = good_dialogue()
    m[6] = m[6].model_copy(update={"content": "It is sunny. I booked it: number B-78."})
    return m


def _broken_empty() -> list[Message]:
    m = good_dialogue()
    m[6] = m[6].model_copy(update={"content": "  "})
    return m


def _broken_values() -> list[Message]:
    m = good_dialogue()
    m[5] = result("call_2", booking_id="B-77", status="}] }, { ")
    return m


def _broken_acknowledgement() -> list[Message]:
    m = good_dialogue()
    m[5] = result("call_2", error="Hotel H-1001 not found")
    m[6] = m[6].model_copy(update={"content": "The weather is 18 degrees and sunny in Paris, and "
                                              "you are all set for two nights."})
    return m


def _broken_voice() -> list[Message]:
    m = good_dialogue()
    m[6] = m[6].model_copy(update={"content": "The assistant booked hotel H-1001; booking "
                                              "B-77."})
    return m


def _broken_foreknowledge() -> list[Message]:
    m = good_dialogue()  # the user knows the booking number before the booking
    m[1] = m[1].model_copy(update={"content": m[1].content + " My booking will be B-77."})
    return m


def _broken_denial() -> list[Message]:
    m = good_dialogue()  # the booking came back, and the reply says nothing was found
    m[6] = m[6].model_copy(update={"content": "It is 18 degrees; B-77 is yours, but sorry, I "
                                              "couldn't find a room in Paris."})
    return m


def _broken_report() -> list[Message]:
    m = good_dialogue()  # weather and a booking came back, and the reply gives neither
    m[6] = m[6].model_copy(update={"content": "I'm glad I could help."})
    return m


BROKEN = {
    "roles_in_order": _broken_roles,
    "turns_nonempty": _broken_empty,
    "tool_results_match_calls": _broken_ids,
    "call_names_known": _broken_names,
    "schema_valid_arguments": _broken_arguments,
    "values_wellformed": _broken_values,
    "turns_in_voice": _broken_voice,
    "no_repetition": _broken_repetition,
    "grounded_ids": _broken_grounding,
    "claims_grounded": _broken_claim,
    "actions_grounded": _broken_action,
    "users_know_no_results": _broken_foreknowledge,
    "denials_grounded": _broken_denial,
    "results_reported": _broken_report,
    "errors_acknowledged": _broken_acknowledgement,
    "no_instruction_echo": _broken_echo,
}


def test_every_rule_has_a_breaking_case() -> None:
    assert {r.__name__ for r in RULES} == set(BROKEN)


def test_good_dialogue_passes_every_rule() -> None:
    for rule in RULES:
        verdict = rule(good_dialogue(), TOOLS)
        assert verdict.passed, (rule.__name__, verdict.detail)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_rule_rejects_exactly_its_break(name: str) -> None:
    dialogue = BROKEN[name]()
    verdicts = {r.__name__: r(dialogue, TOOLS) for r in RULES}
    assert not verdicts[name].passed
    assert verdicts[name].detail  # a reason, naming the turn
    others = [n for n, v in verdicts.items() if n != name and not v.passed]
    assert others == [], others


def test_unparseable_arguments_are_rejected_not_raised() -> None:
    m = good_dialogue()
    m[2] = m[2].model_copy(update={"tool_calls": [
        m[2].tool_calls[0].model_copy(update={"function": m[2].tool_calls[0].function.model_copy(
            update={"arguments": "{city: Paris"})})]})
    verdict = checks.schema_valid_arguments(m, TOOLS)
    assert not verdict.passed and "not an object" in verdict.detail


def test_ids_from_tool_results_are_grounded() -> None:
    m = good_dialogue()
    m[1] = Message(role="user", content="Weather in Paris, and book the first hotel for 2 nights.")
    m[3] = result("call_1", temperature=18, hotels=[{"hotel_id": "H-1001"}])
    assert checks.grounded_ids(m, TOOLS).passed
    assert json.loads(m[3].content)["hotels"][0]["hotel_id"] == "H-1001"


def test_a_call_made_again_after_it_succeeded_is_repetition() -> None:
    m = good_dialogue()
    again = [*m[:4], call("call_3", "get_weather", city="Paris"), result("call_3", temperature=18),
             *m[4:]]
    check = checks.no_repetition(again, TOOLS)
    assert not check.passed
    assert check.detail == "[4] repeats the call get_weather made at [2], which succeeded " \
                           "(right after it)"
    # the order of the arguments does not make it another call; later, with the same result
    reordered = [*m[:6], call("call_3", "get_weather", city="Paris"),
                 result("call_3", temperature=18, conditions="sunny"), m[6]]
    check = checks.no_repetition(reordered, TOOLS)
    assert not check.passed and check.detail.endswith("(with the same result)")
    # later with another result: the state changed in between (ls, mkdir, ls)
    changed = [*m[:6], call("call_3", "get_weather", city="Paris"),
               result("call_3", temperature=12, conditions="rain"), m[6]]
    assert checks.no_repetition(changed, TOOLS).passed
    # trying a call again after its result was an error is not repetition
    retried = [*m[:2], call("call_1", "get_weather", city="Paris"),
               result("call_1", error="timeout"), call("call_3", "get_weather", city="Paris"),
               result("call_3", temperature=18), *m[4:]]
    assert checks.no_repetition(retried, TOOLS).passed


def test_an_iso_date_is_not_an_id_unless_its_parameter_is_one() -> None:
    m = good_dialogue()
    m[1] = Message(role="user", content="Weather in Paris on July 20th? Then book H-1001, 2 "
                                         "nights.")
    m[2] = call("call_1", "get_weather", city="Paris", date="2026-07-20")
    assert checks.grounded_ids(m, TOOLS).passed
    m[4] = call("call_2", "book_hotel", hotel_id="2026-07-20", nights=2)
    assert not checks.grounded_ids(m, TOOLS).passed


def test_an_entity_argument_without_digits_is_grounded_too() -> None:
    m = good_dialogue()
    m[4] = call("call_2", "book_hotel", hotel_id="grand_plaza", nights=2)
    check = checks.grounded_ids(m, TOOLS)
    assert not check.passed and "'grand_plaza'" in check.detail
    m[1] = Message(role="user", content="Weather in Paris? Then book grand_plaza, 2 nights.")
    assert checks.grounded_ids(m, TOOLS).passed


def test_a_reply_after_a_refused_call_must_say_so_unless_the_call_is_retried() -> None:
    m = _broken_acknowledgement()
    m[6] = m[6].model_copy(update={"content": "Sorry, hotel H-1001 could not be found."})
    assert checks.errors_acknowledged(m, TOOLS).passed
    retried = [*m[:6], call("call_3", "book_hotel", hotel_id="H-1001", nights=2),
               result("call_3", booking_id="B-77"),
               m[6].model_copy(update={"content": "Booked: B-77."})]
    assert checks.errors_acknowledged(retried, TOOLS).passed


def test_a_turn_that_contains_an_earlier_one_is_repetition() -> None:
    m = good_dialogue()
    m[6] = m[6].model_copy(update={"content": m[1].content + " Also, all done."})
    check = checks.no_repetition(m, TOOLS)
    assert not check.passed and "within it" in check.detail
    # a turn a result holds too is data, quoted: a tweet's text the user gave, posted
    text = "Excited to share our latest project insights with the whole team!"
    m[1] = m[1].model_copy(update={"content": text})
    m[5] = result("call_2", booking_id="B-77", note=text)
    m[6] = m[6].model_copy(update={"content": f"Booked B-77 with the note '{text}'"})
    assert checks.no_repetition(m, TOOLS).passed


def test_code_in_a_turn_is_not_speech() -> None:
    m = good_dialogue()
    m[6] = m[6].model_copy(update={"content": "search_products({"})
    check = checks.turns_in_voice(m, TOOLS)
    assert not check.passed and "code" in check.detail
    m[6] = m[6].model_copy(update={"content": "You can call get_product_details() for it."})
    check = checks.turns_in_voice(m, TOOLS)  # a function no tool of this dialogue names
    assert not check.passed and "get_product_details()" in check.detail
    for coded in ("add to cart(product_id: 'product id', quantity: 5)",  # built-in plan
                  "Please run search(query='lamp')."):
        m[6] = m[6].model_copy(update={"content": coded})
        assert "code" in checks.turns_in_voice(m, TOOLS).detail, coded
    m[6] = m[6].model_copy(update={"content": "Booked (note: two nights), B-77, sunny."})
    assert checks.turns_in_voice(m, TOOLS).passed  # a space before the bracket: words


def test_narration_is_talk_about_the_parties_not_a_domains_words() -> None:
    from naig.stages.checks import out_of_voice

    assert out_of_voice("The assistant booked the hotel.")
    assert out_of_voice("The user wants to cancel the order.")
    assert out_of_voice("What is the user ID of Omar Santos, zip 76180?") is None
    assert out_of_voice("Your user ID is omar_4830.") is None


def test_a_turn_that_stops_at_a_colon_announces_what_never_comes() -> None:
    m = good_dialogue()
    m[6] = m[6].model_copy(update={"content": "The hotels in Paris are:"})
    check = checks.turns_in_voice(m, TOOLS)
    assert not check.passed and "colon" in check.detail
    m[6] = m[6].model_copy(update={"content": "The hotels in Paris: H-1001 and H-1002."})
    assert checks.turns_in_voice(m, TOOLS).passed


def test_a_turn_that_names_a_tool_is_not_speech() -> None:
    m = good_dialogue()
    m[1] = m[1].model_copy(update={"content": "Use book_hotel to book H-1001, and check the "
                                              "weather in Paris."})
    check = checks.turns_in_voice(m, TOOLS)
    assert not check.passed and "'book_hotel'" in check.detail


def test_an_expert_verdict_needs_a_reason_that_is_not_a_verdict() -> None:
    from naig.stages.verify import _verdict

    with pytest.raises(ValueError, match="reason"):
        _verdict({"reason": "pass, turn 1", "verdict": "fail"})
    with pytest.raises(ValueError, match="reason"):
        _verdict({"reason": "fine", "verdict": "pass"})
    assert _verdict({"reason": "[4] uses an ID nobody gave", "verdict": "fail"})


def test_a_user_may_state_a_record_that_exists_in_the_start_state() -> None:
    # tau2's users know their zip code and order IDs: a value the environment's start
    # state holds is theirs to say, not a result they could not know
    m = _broken_foreknowledge()
    assert not checks.users_know_no_results(m, TOOLS).passed
    assert checks.users_know_no_results(m, TOOLS, known={"B-77": frozenset({"id"})}).passed
    assert not checks.users_know_no_results(m, TOOLS, known={"B-78": frozenset({"id"})}).passed


def test_a_user_may_not_state_what_a_later_request_returns() -> None:
    m = good_dialogue()  # a user who tells a booking number only the next request returns
    m[6] = Message(role="assistant", content="It is 18 degrees and sunny in Paris.")
    m[4:6] = []
    m += [Message(role="user", content="You found my booking B-77, thanks."),
          Message(role="assistant", content="Glad it is sorted."),
          Message(role="user", content="Now book hotel H-1001 for 2 nights."),
          call("call_2", "book_hotel", hotel_id="H-1001", nights=2),
          result("call_2", booking_id="B-77", status="confirmed"),
          Message(role="assistant", content="Booked: B-77.")]
    check = checks.users_know_no_results(m, TOOLS)
    assert not check.passed and check.detail.startswith("[5]") and "B-77" in check.detail
    m[5] = Message(role="user", content="Thanks.")
    assert checks.users_know_no_results(m, TOOLS).passed
    m[5] = Message(role="user", content="My loyalty number is 12345.")
    m[8] = call("call_2", "get_weather", city="Paris")  # a later look-up may return it
    m[9] = result("call_2", loyalty_number="12345")
    assert checks.users_know_no_results(m, TOOLS).passed


def test_a_user_who_speaks_as_the_assistant_has_swapped_roles() -> None:
    m = good_dialogue()
    m.insert(7, Message(role="user", content="You're welcome! How can I assist you today?"))
    m.insert(8, Message(role="assistant", content="Thanks, that is all."))
    check = checks.turns_in_voice(m, TOOLS)
    assert not check.passed and "speaks as the assistant" in check.detail


@pytest.mark.parametrize(("role", "text"), [  # seen in kept dialogues of the benchmark
    ("user", "I'm glad you found it helpful. Do you have any other questions or need further "
             "assistance?"),
    ("user", "I'm glad I could help! Is there anything else you can?"),
    ("user", "Sure, I'd be happy to help with that! Please provide the following details."),
    ("user", "I cannot modify the shipping address of a pending order with the tools "
             "provided. I can only help you to view the details of your orders."),  # tau2
    ("user", "Thank you for providing your order details. I'm glad to help with that."),
    ("assistant", "No, that's all I need."),
    ("assistant", "Thank you for your help, you've been very helpful."),
    ("assistant", "I found the laptop and added 2 units to my cart."),  # built-in, 6d7b0c7
    ("assistant", "For my second request to find hotels, I found one."),  # built-in, 42a1dcc
])
def test_either_party_speaking_the_others_lines_fails(role: str, text: str) -> None:
    m = good_dialogue()
    m.insert(7, Message(role=role, content=text))  # type: ignore[arg-type]
    check = checks.turns_in_voice(m, TOOLS)
    assert not check.passed and f"the {role} speaks as the" in check.detail
    assert checks.unsayable(text, [], [], user=role == "user") is not None


@pytest.mark.parametrize(("role", "text"), [
    ("user", "Thanks for your help, that's all I need."),
    ("assistant", "Is there anything else I can do for you? Feel free to ask."),
])
def test_each_party_may_say_its_own_lines(role: str, text: str) -> None:
    assert checks.unsayable(text, [], [], user=role == "user") is None


def test_the_arguments_expert_is_always_asked_and_told_what_code_could_not_find() -> None:
    import asyncio

    from naig.envs.simulated import SimulatedEnvironment
    from naig.stages.verify import question, unshown, verify
    from naig.testing import ScriptedLLM

    assert unshown(good_dialogue()) == []
    assert "Every argument value is written" in question("expert_arguments_grounded",
                                                         good_dialogue())
    m = good_dialogue()
    m[1] = Message(role="user", content="Weather in Paris, then book hotel H-1001 for two "
                                        "nights, from 2024.")
    assert unshown(m) == ["[4] book_hotel: nights = 2"]  # "2" is not in "2024"
    asked = question("expert_arguments_grounded", m)
    assert "[4] book_hotel: nights = 2" in asked
    llm = ScriptedLLM(respond=lambda r: {"reason": "two nights is 2, as asked",
                                         "verdict": "pass"})
    v = asyncio.run(verify(llm, m, TOOLS, SimulatedEnvironment(TOOLS, llm, 1), seed=1))
    assert v.passed and len(llm.requests) == 4  # all four experts, every time


def test_where_tools_execute_the_results_expert_asks_only_about_the_replies() -> None:
    import asyncio

    from naig.stages.verify import expert
    from naig.testing import ScriptedLLM

    def asked(executes: bool) -> str:
        llm = ScriptedLLM(respond=lambda r: {"reason": "[6] reports [5]", "verdict": "pass"})
        asyncio.run(expert(llm, "expert_results_consistent", good_dialogue(), TOOLS, 1,
                           executes=executes))
        return llm.requests[0].messages[-1].content

    assert "plausible" in asked(False)  # invented results may be implausible
    real = asked(True)  # a real result is true as it stands (mkdir's null)
    assert "plausible" not in real and "true as they stand" in real and "truthfully" in real


def test_the_task_expert_judges_each_aside_on_its_own() -> None:
    """A request declined that no tool can do is judged from its own two turns; the rest
    of the dialogue with the aside marked out; a clarification question is no aside."""
    import asyncio

    from naig.stages.verify import ASIDE, asides, expert
    from naig.testing import ScriptedLLM

    asked = Message(role="assistant", content="Which city?")
    declined = [Message(role="user", content="Can you also rent me a car?"),
                Message(role="assistant", content="I can't rent cars, sorry.")]
    m = good_dialogue() + declined
    assert asides(good_dialogue()) == [] and asides(m) == [8]
    assert asides(good_dialogue()[:2] + [asked] + good_dialogue()[1:]) == []
    verdicts = iter([{"reason": "the hotel is booked as asked", "verdict": "pass"},
                     {"reason": "[7] asks to book a room", "tool": "book_hotel"},
                     {"reason": "the hotel is booked as asked", "verdict": "pass"},
                     {"reason": "no tool rents cars, as [8] says", "tool": "none"}])
    llm = ScriptedLLM(respond=lambda r: next(verdicts))
    check = asyncio.run(expert(llm, "expert_task_completed", m, TOOLS, seed=1))
    whole, aside = (r.messages[-1].content for r in llm.requests)
    assert f"[7] {ASIDE}" in whole and f"[8] {ASIDE}" in whole and "rent" not in whole
    assert "which of the assistant's tools does what the user's message [7] asks" in \
        aside.lower() and "rent me a car" in aside
    enum = llm.requests[1].schema_["properties"]["tool"]["enum"]
    assert enum == ["none"] + [t.name for t in TOOLS]  # a tool is picked, not a verdict
    assert not check.passed and check.detail.startswith("[8] the assistant answers without "
                                                        "a tool, but book_hotel does")
    assert asyncio.run(expert(llm, "expert_task_completed", m, TOOLS, seed=1)).passed
    thanks = good_dialogue() + [Message(role="user", content="Thanks, that's great."),
                                Message(role="assistant", content="Glad it worked out.")]
    llm = ScriptedLLM([{"reason": "the hotel is booked as asked", "verdict": "pass"}])
    assert asyncio.run(expert(llm, "expert_task_completed", thanks, TOOLS, seed=1)).passed
    assert len(llm.requests) == 1  # no tool does what thanks asks: nothing to ask


def test_results_an_environment_returned_are_not_judged_as_junk() -> None:
    """A real file's JSON text, read by ``cat`` on BFCL's file system, is what the file
    holds; the rule is for results a model wrote."""
    import asyncio

    from naig.envs.python_module import PythonEnvironment
    from naig.envs.simulated import SimulatedEnvironment
    from naig.stages.verify import verify
    from naig.testing import ScriptedLLM

    m = good_dialogue()
    m[5] = result("call_2", booking_id="B-77", note='{"experiment": "Apollo", "result": "ok"}')
    assert not checks.values_wellformed(m, TOOLS).passed
    assert checks.values_wellformed(m, TOOLS, results=False).passed
    arguments = good_dialogue()
    arguments[4] = arguments[4].model_copy(update={"tool_calls": [
        arguments[4].tool_calls[0].model_copy(update={"function": arguments[4].tool_calls[0]
                                              .function.model_copy(update={
                                                  "arguments": '{"hotel_id": "}] }, { "}'})})]})
    assert not checks.values_wellformed(arguments, TOOLS, results=False).passed  # always

    def wellformed(env: object) -> bool:
        v = asyncio.run(verify(ScriptedLLM(), m, TOOLS, env, seed=0, experts=False))  # type: ignore[arg-type]
        return next(c for c in v.checks if c.name == "values_wellformed").passed
    assert not wellformed(SimulatedEnvironment(TOOLS, ScriptedLLM(), 0))
    assert wellformed(PythonEnvironment(TOOLS, "tests.tools_module", name="python:x"))


def test_the_echo_check_reads_the_words_it_guards_from_the_prompts() -> None:
    """Every placeholder comes from the templates; every word of the prompts' own
    vocabulary still occurs in the prompt text naig sends (a template, or feedback written
    in the stages), so editing a prompt cannot leave the check guarding stale words."""
    from pathlib import Path

    import naig
    from naig.prompts import placeholders
    from naig.stages.checks import ECHO_WORDS

    root = Path(naig.__file__).parent
    sent = "\n".join(p.read_text("utf-8") for p in [*(root / "prompts").glob("*.j2"),
                                                     *(root / "stages").glob("*.py")]
                     if p.name != "checks.py")
    assert {"[MASK]", "[HIDDEN]", "[TURN]"} <= placeholders()
    for word in ECHO_WORDS:
        assert word in sent, word
    for marker in placeholders():
        m = good_dialogue()
        m[6] = m[6].model_copy(update={"content": f"Here it is: {marker}."})
        assert not no_instruction_echo(m, TOOLS).passed, marker


def test_generators_refuse_the_prompts_words_as_verification_would() -> None:
    from naig.stages.checks import unsayable

    why = unsayable("Cancel reservation NO6JO3, as requested in subtask 1.", [], [], user=True)
    assert why is not None and "'subtask'" in why
    assert unsayable("Cancel reservation NO6JO3, please.", [], [], user=True) is None


def test_a_turn_that_speaks_of_a_function_by_its_name_in_words_is_out_of_voice() -> None:
    from naig.stages.checks import out_of_voice

    tools = ["find_user_id_by_name_zip", "get_weather"]
    said = ("I will provide the first name, last name, and zip code as inputs to the find "
            "user id by name zip function.")
    assert "find_user_id_by_name_zip" in (out_of_voice(said, tools) or "")
    said = "The tool get weather was successful: it is 18 degrees."  # built-in, 42a1dcc
    assert "get_weather" in (out_of_voice(said, tools) or "")
    said = "I found 1 get weather request, with a result of 18 degrees."  # built-in, 9345868
    assert "get_weather" in (out_of_voice(said, tools) or "")
    assert out_of_voice("What's the weather like in Paris?", tools) is None
    assert out_of_voice("I used a tool: get weather reports said 18 degrees.", tools) is None


def test_a_reply_that_reports_the_call_instead_of_the_result_is_out_of_voice() -> None:
    from naig.stages.checks import out_of_voice

    said = ("The tool add to cart was called with the arguments 'product_id': 'P12345'. "
            "The result was {'cart_id': 'C12345', 'items': 2}.")
    assert out_of_voice(said) is not None
    assert out_of_voice("{'cart_id': 'C12345'}") is not None  # a Python dict, as code
    assert out_of_voice("I found it: cabin basic_economy, flights [{") is not None  # airline
    assert out_of_voice("Your cart C12345 holds 2 laptops, $397 in all.") is None


def test_tools_narrated_and_a_user_who_says_youre_welcome_are_out_of_place() -> None:
    from naig.stages.checks import out_of_voice, swapped

    tools = ["find_user_id_by_email", "get_order_details"]
    assert out_of_voice("I will now call find user id by email with the same email.", tools)
    assert out_of_voice("The tool found that the order status is delivered.", tools)
    assert out_of_voice("Your order #W1 was delivered on May 2.", tools) is None
    assert swapped("You're welcome!", user=True) and not swapped("You're welcome!", user=False)
    refusing = "I'm sorry, but I can't assist with that request at the moment."
    assert swapped(refusing, user=True) and not swapped(refusing, user=False)
    asking = "I want to cancel it. Please provide your user id and reservation id."
    assert swapped(asking, user=True)  # tau2:airline: the user asked for the assistant's ID
    assert not swapped("Please give me your opening hours.", user=True)
    assert swapped("Details, please. Please provide the reservation ID and the user ID.",
                   user=True)  # tau2:airline, a user asking for what they must give
    system = "Your request was not processed: it does not adhere to our policy."
    assert swapped(system, user=True)  # tau2:airline: a "user" who answers as the system
    found = "You found the details of the user with ID olivia_smith_4705."
    assert swapped(found, user=False) and not swapped("I found the details.", user=False)
    assert swapped("You found that the file 'a.txt' has been removed.", user=False)
    assert not swapped("I hope you found the answer useful.", user=False)
    assert swapped("I found that you've successfully commented on tweet 0.", user=False)
    assert swapped("I am glad you found the information useful!", user=True)  # tau2:retail
    for line in ("No problem! I'm glad to have been of assistance.",  # GorillaFileSystem
                 "I understand your request and will work on it.",  # MAS's users, built-in
                 "Would you like to add 3 units of it to your cart?"):
        assert swapped(line, user=True) and not swapped(line, user=False), line
    assert not swapped("I found the information useful, thanks.", user=True)
    assert out_of_voice("The tool result for booking shows B-7 is confirmed.", tools)
    assert out_of_voice("The result shows B-7 is confirmed.", tools) is None
    assert out_of_voice("Search tweets and store the results in a variable named 'found'.",
                        tools)
    assert out_of_voice("The variable costs are listed in the report.", tools) is None


def test_an_action_is_grounded_by_a_call_that_did_it_or_a_result_that_reports_it() -> None:
    from naig.stages.checks import actions_grounded

    assert actions_grounded(good_dialogue(), TOOLS).passed  # "is booked" after book_hotel
    m = good_dialogue()[:4] + [Message(role="assistant", content="Order #W1 was cancelled.")]
    m[3] = result("call_1", status="cancelled")  # reported by a result, not claimed
    assert actions_grounded(m, TOOLS).passed
    refused = good_dialogue()
    refused[5] = result("call_2", error="no room")
    check = actions_grounded(refused, TOOLS)  # the booking failed: "is booked" is false
    assert not check.passed and check.detail.startswith("[6]")
    told = good_dialogue()[:4] + [Message(role="assistant", content="You also added 3 units.")]
    assert not actions_grounded(told, TOOLS).passed  # said of the user: no call added any
    told[-1] = Message(role="assistant", content="I found the contact and removed it.")
    assert not actions_grounded(told, TOOLS).passed  # "and removed": no call removed it
    booked = good_dialogue()
    booked[6] = Message(role="assistant", content="You have booked hotel H-1001, B-77.")
    check = actions_grounded(booked, TOOLS)  # book_hotel was the assistant's call
    assert not check.passed and "say 'I'" in check.detail
    booked[6] = Message(role="assistant", content="I found that you booked hotel H-1001.")
    assert "say 'I'" in actions_grounded(booked, TOOLS).detail  # kept built-in, d9e8d79
    booked[6] = Message(role="assistant", content="I have booked hotel H-1001, B-77.")
    assert actions_grounded(booked, TOOLS).passed
    for seen in ("I compared them line by line.", "I have retweeted it for you.",
                 "It is 18 degrees. Added to cart.", "Booked a room.",  # the verb first
                 "I was able to successfully copy the file to the new folder."):
        told[-1] = Message(role="assistant", content=seen)  # kept BFCL data: no diff, retweet
        assert not actions_grounded(told, TOOLS).passed, seen
    for described in ("Scheduled for Monday: Team sync.", "Sent to your home address on May 1.",
                      "Changed your mind? Just ask."):
        told[-1] = Message(role="assistant", content=f"It is 18 degrees. {described}")
        assert actions_grounded(told, TOOLS).passed, described


def test_a_denial_after_an_empty_or_failed_result_is_true() -> None:
    m = good_dialogue()
    m[5] = result("call_2", rooms=[])  # nothing came back: "couldn't find" is the truth
    m[6] = m[6].model_copy(update={"content": "It is 18 degrees, but sorry, I "
                                              "couldn't find a room in Paris."})
    assert checks.denials_grounded(m, TOOLS).passed
    m[5] = result("call_2", error="Hotel H-1001 is full")
    assert checks.denials_grounded(m, TOOLS).passed
    m[5] = result("call_2", booking_id="B-7")  # tau2:airline: the reservation came back
    for denial in ("I found no reservation with that ID.", "There are no records of it.",
                   "There are currently no hotels available.",  # built-in, 42a1dcc
                   "No rooms are available on that date."):
        m[6] = m[6].model_copy(update={"content": denial})
        assert not checks.denials_grounded(m, TOOLS).passed, denial
    m[6] = m[6].model_copy(update={"content": "I found no pending orders for you."})
    assert checks.denials_grounded(m, TOOLS).passed  # read from what came back: may be true


def test_a_value_that_only_restates_its_parameter_is_a_placeholder() -> None:
    from naig.tools import degenerate

    address = {"address1": "new address 1", "city": "new city", "zip": "new zip"}
    assert degenerate(address) == "new address 1"
    assert degenerate({"username": "your_username"}) == "your_username"
    assert degenerate({"title": "My title"}) == "My title"
    assert degenerate({"username": "example_user"}) == "example_user"  # TwitterAPI
    assert degenerate({"email": "mia.li@example.com"}) is None
    for real in ({"address1": "621 Spruce Street", "city": "New York"}, {"city": "city"},
                 {"name": "Project name"}, {"file_name": "new_file.txt"},
                 {"title": "Team sync"}, {"zip": "76180"}):
        assert degenerate(real) is None, real


def test_a_path_of_dots_is_a_value_but_an_ellipsis_is_not() -> None:
    from naig.tools import degenerate

    for path in ("..", "../..", "/", ".", "~"):
        assert degenerate({"folder": path}) is None, path
    for junk in ("...", "--", "?", "{}", "...."):
        assert degenerate({"folder": junk}) is not None, junk


def test_a_required_argument_given_an_empty_string_is_no_argument() -> None:
    from naig.tools import tool_from_dict

    m = good_dialogue()
    call = m[4].tool_calls[0]
    assert checks.schema_valid_arguments(m, TOOLS).passed
    args = json.loads(call.function.arguments)
    empty = {**args, "hotel_id": " "}
    m[4] = m[4].model_copy(update={"tool_calls": [call.model_copy(update={
        "function": call.function.model_copy(update={"arguments": json.dumps(empty)})})]})
    check = checks.schema_valid_arguments(m, TOOLS)
    assert not check.passed and "'hotel_id' is required and empty" in check.detail
    address = tool_from_dict({"type": "function", "function": {
        "name": "set_address", "parameters": {"type": "object", "properties": {
            k: {"type": "string"} for k in ("user_id", "address1", "address2", "city")},
            "required": ["user_id", "address1", "address2", "city"]}}}, "test")
    assert address.empty_required({"user_id": "u1", "address1": "1 Elm St", "address2": "",
                                   "city": "Dallas"}) is None  # no suite: a choice
    assert address.empty_required({"user_id": "u1", "address1": "", "address2": "",
                                   "city": ""}) == "address1"  # no address at all


def test_a_reply_may_count_only_what_the_dialogue_gives() -> None:
    # TwitterAPI: "I found three tweets" over a search that returned one
    m = good_dialogue()[:4]  # the weather call and its result: no list in it
    m.append(Message(role="assistant", content="I found three hotels in Paris for you."))
    check = checks.claims_grounded(m, TOOLS)
    assert not check.passed and "found three hotels" in check.detail
    m[3] = result("call_1", hotels=[{"id": "H-1"}, {"id": "H-2"}, {"id": "H-3"}])
    assert checks.claims_grounded(m, TOOLS).passed  # a list of three came back
    m[3] = result("call_1", temperature=18)
    m[4] = Message(role="assistant", content="It is 18 degrees; there are 2 nights left.")
    assert checks.claims_grounded(m, TOOLS).passed  # "are 2 nights": the user said 2


def test_a_written_result_keeps_to_the_bounds_its_call_set() -> None:
    from naig.tools import out_of_bounds

    hotels = {"hotels": [{"hotel_id": "H-1", "price_usd": 180}, {"hotel_id": "H-2",
                                                                  "price_usd": 240}]}
    assert out_of_bounds({"max_price_usd": 200}, hotels) == \
        "price_usd 240 breaks the call's max_price_usd 200"
    assert out_of_bounds({"max_price_usd": 250}, hotels) is None
    assert out_of_bounds({"min_rating": 4}, {"items": [{"rating": 3.5}]}) is not None
    assert out_of_bounds({"nights": 2}, hotels) is None  # no bound
    # where the result is written after its call (the simulated environment), its schema
    # carries the bound: shown to the model, and to a server that decodes numeric ranges
    from naig.tools import bounded

    schema = {"type": "object", "properties": {"hotels": {"type": "array", "items": {
        "type": "object", "properties": {"price_usd": {"type": "number"},
                                         "stars": {"type": "integer"}}}}}}
    inner = bounded(schema, {"max_price_usd": 200})["properties"]["hotels"]["items"]
    assert inner["properties"]["price_usd"]["maximum"] == 200
    assert "maximum" not in inner["properties"]["stars"]
    assert bounded(schema, {"nights": 2}) is schema
    m = good_dialogue()
    m[2] = call("call_1", "get_weather", city="Paris", max_temperature=10)
    check = checks.values_wellformed(m, TOOLS)
    assert not check.passed and "temperature 18 breaks" in check.detail
    assert checks.values_wellformed(m, TOOLS, results=False).passed  # a real result is true


def test_a_reply_that_announces_a_change_and_stops_fails() -> None:
    # tau2:retail, kept at fb654d1: "I found the user ID and now I will modify their
    # default address." and the turn ended there
    m = good_dialogue()
    m[6] = Message(role="assistant", content="It is 18 degrees. I will now book the hotel.")
    check = checks.actions_grounded(m, TOOLS)
    assert not check.passed and "I will now book" in check.detail
    m[6] = Message(role="assistant", content="It is 18 degrees. I will book H-1001 once you "
                                             "confirm: shall I?")
    assert checks.actions_grounded(m, TOOLS).passed  # asking first is right


def test_a_user_who_asks_again_in_the_same_words_repeats_but_a_reply_may_restate() -> None:
    m = good_dialogue()
    first = "I want to reserve a hotel room in San Francisco for May with a view of the bay"
    m[1] = m[1].model_copy(update={"content": first + ", and check the weather."})
    m.append(Message(role="user", content=first + " please."))
    m.append(Message(role="assistant", content="It is done."))
    check = checks.no_repetition(m, TOOLS)
    assert not check.passed and "copies [1]" in check.detail
    m[-2] = m[-2].model_copy(update={"content": "Thanks, that's all."})
    m[6] = m[6].model_copy(update={"content": "I have reserved a hotel room in San Francisco "
                                              "for May with a view of the bay: B-77."})
    assert checks.no_repetition(m, TOOLS).passed  # a reply restating what it did
    m[6] = m[6].model_copy(update={"content": "You can reserve a hotel room in San Francisco "
                                              "for May with a view of the bay, and check the "
                                              "weather."})
    check = checks.no_repetition(m, TOOLS)  # a reply that gives the request back
    assert not check.passed and "copies [1]" in check.detail
    m[-2] = m[-2].model_copy(update={"content": "You found a hotel room reservation for May "
                                                "16th in San Francisco with booking ID B-77. "
                                                "The total cost is $500."})
    m[6] = m[6].model_copy(update={"content": "I found a hotel room reservation for May 16th "
                                              "in San Francisco with booking ID B-77. The "
                                              "total cost is $500."})
    check = checks.no_repetition(m, TOOLS)  # a user who gives a reply back (built-in)
    assert not check.passed and "copies [6]" in check.detail
    m[6] = m[6].model_copy(update={"content": "Shall I book Hotel Lumiere in Paris for 2 "
                                              "nights from May 16 to May 18?"})
    m[-2] = m[-2].model_copy(update={"content": "Yes, book Hotel Lumiere in Paris for 2 "
                                                "nights from May 16 to May 18."})
    assert checks.no_repetition(m, TOOLS).passed  # a yes to a question says it again


def test_a_reply_may_give_a_record_only_a_status_a_result_showed() -> None:
    # tau2:retail: "they have two pending orders" after a look-up that gave no status
    from naig.grounding import vocabulary

    known = vocabulary({"orders": {"#W1": {"status": "delivered"}, "#W2": {"status":
                                                                         "pending"}}})
    m = good_dialogue()
    m[0] = Message(role="system", content="Only pending orders can be cancelled.")  # policy
    m[6] = Message(role="assistant", content="Booked B-77. You have two pending orders.")
    check = checks.claims_grounded(m, TOOLS, known=known)
    assert not check.passed and "pending orders" in check.detail
    assert checks.claims_grounded(m, TOOLS).passed  # the state unknown: not judged
    m[5] = result("call_2", booking_id="B-77", orders=[{"id": "#W2", "status": "pending"}])
    assert checks.claims_grounded(m, TOOLS, known=known).passed


def test_a_look_up_that_returns_what_another_look_up_did_learns_nothing() -> None:
    # tau2:retail: the user's ID looked up by email after it was found by name
    from naig.dialogue import MadeCall

    by_name = MadeCall(2, ("find_user_id_by_name_zip", "{}"), '"mia_santos_8853"')
    by_mail = MadeCall(8, ("find_user_id_by_email", "{}"), '"mia_santos_8853"')
    assert "learns nothing new" in (checks.repeated_call([by_name, by_mail], 1) or "")
    cancel = MadeCall(2, ("cancel_pending_order", "{}"), '{"order_id": "#W1"}')
    read = MadeCall(4, ("get_order_details", "{}"), '{"order_id": "#W1"}')
    assert checks.repeated_call([cancel, read], 1) is None  # reading back a change: fine
    made = MadeCall(2, ("mkdir", "{}"), "null")
    touched = MadeCall(4, ("pwd", "{}"), "null")
    assert checks.repeated_call([made, touched], 1) is None  # nothing returned: nothing said


def test_a_reply_names_only_long_numbers_the_dialogue_gave() -> None:
    # tau2:retail: a zip code (76180) after a look-up that returned only the user's ID
    m = good_dialogue()
    m[6] = Message(role="assistant", content="Booked B-77; your zip is 76180.")
    check = checks.claims_grounded(m, TOOLS)
    assert not check.passed and "76180" in check.detail
    m[5] = result("call_2", booking_id="B-77", status="confirmed", total=12500)
    m[6] = Message(role="assistant", content="Booked B-77 for $12500 in 2024.")
    assert checks.claims_grounded(m, TOOLS).passed  # an amount, a year


def test_a_reply_gives_a_record_only_the_price_and_stock_its_result_gave() -> None:
    # built-in at 6fd7c24, kept: "F1234 with a price of $90" over a search that priced F1234
    # at $100 and F5678 at $90; "3 in stock" over results that gave no stock
    m = good_dialogue()
    m[5] = result("call_2", booking_id="B-77", status="confirmed",
                  rooms=[{"id": "R-10", "price": 100}, {"id": "R-20", "price": "$90"}])
    for false in ("Booked B-77: room R-10 costs $90.", "Room R-10 is booked; 3 left in stock.",
                  "Room R-10 costs $100 with stock 3.",
                  "Room R-10 costs $90.",
                  "Booked B-77 for 75 dollars.", "R-20 has a stock of 4."):
        m[6] = Message(role="assistant", content=false)
        check = checks.claims_grounded(m, TOOLS)
        assert not check.passed and "for what it names" in check.detail, false
    for true in ("Booked B-77: room R-10 costs $100, room R-20 $90.",
                 "Room R-20 costs $90; for 2 nights that is $180.",  # a total: 90 x 2
                 "Rooms start at $90.",  # names no record: a price the dialogue gives
                 "Booked B-77. It is 18 degrees, and I found rooms from 100 dollars."):
        m[6] = Message(role="assistant", content=true)
        assert checks.claims_grounded(m, TOOLS).passed, true
    m[1] = Message(role="user", content="Book hotel H-1001 for 2 nights, 1 adult.")
    m[6] = Message(role="assistant", content="Room R-10 costs $90.")
    assert not checks.claims_grounded(m, TOOLS).passed  # not a total: 90 x 1


def test_a_request_that_gives_details_none_holds_a_placeholder() -> None:
    from naig.stages.checks import out_of_voice

    text = "I want to delete the Archives directory. Details: None."  # GorillaFileSystem
    assert out_of_voice(text) is not None
    assert out_of_voice("None of my orders arrived. Details: order #W1.") is None


def test_a_reply_that_says_it_sorted_needs_a_sort() -> None:
    # GorillaFileSystem, kept: "I sorted its contents line by line" after touch alone
    m = good_dialogue()
    m[6] = Message(role="assistant", content="Booked B-77, and I sorted the list for you.")
    check = checks.actions_grounded(m, TOOLS)
    assert not check.passed and "I sorted" in check.detail


def test_a_reply_finds_only_ids_a_result_returned_and_confirms_only_what_a_call_made() -> None:
    # TwitterAPI, kept: the user said tweet 1234, the post returned 0, and the reply said
    # "I found the tweet with ID 1234 ... Your booking has been confirmed."
    m = good_dialogue()
    m[1] = m[1].model_copy(update={"content": m[1].content + " My old booking is B-12."})
    m[6] = Message(role="assistant", content="I found the booking with ID B-12 for you.")
    check = checks.claims_grounded(m, TOOLS)
    assert not check.passed and "B-12" in check.detail  # only the user said it
    m[6] = Message(role="assistant", content="I found the booking with ID B-77 for you.")
    assert checks.claims_grounded(m, TOOLS).passed
    m[6] = Message(role="assistant", content="It is 18 degrees. Your booking is confirmed.")
    assert checks.actions_grounded(m, TOOLS).passed  # book_hotel ran since the request
    del m[4:6]
    check = checks.actions_grounded(m, TOOLS)
    assert not check.passed and "booking is confirmed" in check.detail


def test_a_reply_that_calls_a_reservation_a_flight_fails_where_the_state_is_known() -> None:
    # tau2:airline: "The flight with number MEMLVX is already booked" (a reservation)
    from naig.grounding import vocabulary

    known = vocabulary({"reservations": {"MEMLVX": {"reservation_id": "MEMLVX"}},
                        "flights": {"HAT235": {"flight_number": "HAT235"}}})
    m = good_dialogue()
    m[6] = Message(role="assistant", content="The flight with number MEMLVX is booked: B-77.")
    check = checks.claims_grounded(m, TOOLS, known=known)
    assert not check.passed and "calls MEMLVX a flight" in check.detail
    assert checks.claims_grounded(m, TOOLS).passed  # the state unknown: not judged


def test_a_claimed_action_names_only_files_a_call_since_the_request_acted_on() -> None:
    from naig.stages.checks import actions_grounded

    tools = [Tool(name="mv")]
    moved = [Message(role="system", content="s"),
             Message(role="user", content="Move previous_report.pdf into document."),
             call("c1", "mv", source="archive", destination="document"),
             Message(role="tool", tool_call_id="c1",
                     content='{"result": "\'archive\' moved to \'document/archive\'"}'),
             Message(role="assistant", content="Done. The previous_report.pdf file was moved "
                                               "to the document directory.")]
    check = actions_grounded(moved, tools)  # kept on GorillaFileSystem: a folder was moved
    assert not check.passed and "previous_report.pdf" in check.detail
    moved[-1] = Message(role="assistant", content="I moved archive into document. Your "
                                                  "previous_report.pdf is inside it.")
    assert actions_grounded(moved, tools).passed  # the file is named, not said to be moved
    moved[2] = call("c1", "mv", source="previous_report.pdf", destination="document")
    moved[-1] = Message(role="assistant", content="The previous_report.pdf file was moved.")
    assert actions_grounded(moved, tools).passed


def test_nothing_is_found_where_every_result_came_back_empty() -> None:
    m = good_dialogue()[:4] + [Message(role="assistant", content="I found 1 tweet about AI, "
                                                                  "ID 0.")]
    m[3] = Message(role="tool", tool_call_id="call_1", content="[]")  # the search: nothing
    check = checks.denials_grounded(m, TOOLS)
    assert not check.passed and "came back empty" in check.detail
    for said in ("I found no tweets about AI.", "I found that there are no tweets yet."):
        m[4] = Message(role="assistant", content=said)
        assert checks.denials_grounded(m, TOOLS).passed, said
    m[3] = result("call_1", temperature=18)  # something came back: a finding may be true
    m[4] = Message(role="assistant", content="I found the weather: 18 degrees.")
    assert checks.denials_grounded(m, TOOLS).passed


def test_a_call_that_undoes_what_the_dialogue_just_made_on_the_same_values_repeats() -> None:
    tools = [Tool(name="mkdir"), Tool(name="rmdir")]
    m = [Message(role="system", content="s"),
         Message(role="user", content="Delete the Archives directory."),
         call("c1", "mkdir", dir_name="Archives"),
         Message(role="tool", tool_call_id="c1", content="null"),
         call("c2", "rmdir", dir_name="Archives"),
         Message(role="tool", tool_call_id="c2", content='{"result": "removed"}'),
         Message(role="assistant", content="The Archives directory is gone.")]
    check = checks.no_repetition(m, tools)
    assert not check.passed and "undoes mkdir" in check.detail
    m[4] = call("c2", "rmdir", dir_name="Old")  # another folder: the removal stands
    assert checks.no_repetition(m, tools).passed


def test_a_reply_gives_something_its_results_returned() -> None:
    m = good_dialogue()[:4] + [Message(role="assistant", content="I have not added any "
                                                                  "products yet.")]
    check = checks.results_reported(m, TOOLS)
    assert not check.passed and "18" in check.detail and "sunny" in check.detail
    for said in ("It is 18 degrees.", "Paris is SUNNY today.",  # any value, any case
                 "Would you like me to book a hotel too?"):  # a question may come first
        m[4] = Message(role="assistant", content=said)
        assert checks.results_reported(m, TOOLS).passed, said
    m[3] = result("call_1", temperature=1400.0)
    m[4] = Message(role="assistant", content="It is 1,400 degrees.")  # comma and ".0" aside
    assert checks.results_reported(m, TOOLS).passed
    m[3] = result("call_1", city="Paris", temperature=3)  # what the call passed; a digit
    m[4] = Message(role="assistant", content="Done.")
    assert checks.results_reported(m, TOOLS).passed
    m[3] = result("call_1", status="Comment added successfully")  # a message: its words
    m[4] = Message(role="assistant", content="I have added your comment.")
    assert checks.results_reported(m, TOOLS).passed
    m[4] = Message(role="assistant", content="Thank you, goodbye.")
    assert not checks.results_reported(m, TOOLS).passed
    m[3] = result("call_1", name="Hotel Lumiere")  # "hotel": the request's word, not news
    m[4] = Message(role="assistant", content="I looked at the hotel for you.")
    assert not checks.results_reported(m, TOOLS).passed
    m[4] = Message(role="assistant", content="It is the Hotel Lumiere.")
    assert checks.results_reported(m, TOOLS).passed
    # what is said many ways, or was there before, or only says it went well
    for returned, said in (({"temperature": 1299.5}, "It is $1,299.50."),
                           ({"temperature": 18.6}, "It is about 19 degrees."),
                           ({"day": "2024-05-16", "at": "10:30 AM"}, "It is done."),
                           ({"status": "OK"}, "Your tweet has been posted."),
                           ({"city": "Paris", "by": "What"}, "Done, sir."),  # [1] said them
                           ({"temperature": 18}, "Shall I book? It is warm.")):  # a question
        m[3] = result("call_1", **returned)
        m[4] = Message(role="assistant", content=said)
        assert checks.results_reported(m, TOOLS).passed, (returned, said)


def test_a_value_a_later_call_passes_is_still_news_of_the_result_that_gave_it() -> None:
    m = good_dialogue()  # built-in at 34a30af: a search, a booking of what it found, and
    m[3] = result("call_1", hotel_id="H-2002")  # "I booked a hotel room and found hotels"
    m[4] = call("call_2", "book_hotel", hotel_id="H-2002", nights=2)
    m[6] = Message(role="assistant", content="I booked a hotel room and found hotels.")
    check = checks.results_reported(m, TOOLS)
    assert not check.passed and "H-2002" in check.detail


def test_a_result_with_nothing_new_lets_the_reply_say_so() -> None:
    m = good_dialogue()  # the booking came back null: the reply may speak of that alone
    m[5] = Message(role="tool", tool_call_id="call_2", content="null")
    m[6] = Message(role="assistant", content="The booking went through.")
    assert checks.results_reported(m, TOOLS).passed


def test_a_call_whose_two_ends_are_one_goes_nowhere() -> None:
    from naig.tools import same_ends

    flight = {"origin": "San Francisco", "destination": "san francisco", "date": "2023-05-16"}
    assert "origin and destination" in (same_ends(flight) or "")  # built-in, 9345868
    assert "source and destination" in (same_ends({"source": "a.txt", "destination": "a.txt"})
                                        or "")
    assert same_ends({"origin": "London", "destination": "Paris"}) is None
    assert same_ends({"from_date": "2023-10-10", "to_date": "2023-10-10"}) is None  # one day
    assert same_ends({"start": "09:00", "end": "09:00"}) is None
    m = good_dialogue()
    m[2] = call("call_1", "get_weather", origin="Paris", destination="Paris")
    check = checks.values_wellformed(m, TOOLS)
    assert not check.passed and check.detail.startswith("[2] origin and destination")


def test_every_rule_judges_a_dialogue_that_has_no_user_turn() -> None:
    m = good_dialogue()[:1]  # MAS lost at its first turn: the system message alone
    for rule in RULES:
        rule(m, TOOLS)


def test_a_claimed_action_names_only_records_a_call_since_the_request_acted_on() -> None:
    # built-in at 67b6bdc, kept: delete_event(event_id="1234") answered "I found the event
    # 'Birthday Party' with ID 5678 ... and removed it", 5678 listed earlier, never deleted
    m = good_dialogue()
    m[3] = result("call_1", temperature=18, hotels=[{"hotel_id": "H-1001"}, {"id": "H-2002"}])
    m[6] = Message(role="assistant", content="It is 18 degrees. I booked hotel H-2002 for you.")
    check = checks.actions_grounded(m, TOOLS)
    assert not check.passed and "'H-2002' was booked" in check.detail
    m[6] = Message(role="assistant", content="It is 18 degrees. I booked hotel H-1001 for you; "
                                             "H-2002 was full.")
    assert checks.actions_grounded(m, TOOLS).passed  # the call booked H-1001
    m[6] = Message(role="assistant", content="I booked H-1001 (booking B-77). H-2002 is nearer.")
    assert checks.actions_grounded(m, TOOLS).passed  # another sentence, no claim of it


def test_a_reply_gives_the_user_back_their_records_and_requests() -> None:
    from naig.stages.checks import addressed, swapped

    said = "I added 3 units to my cart. My second request found hotels in my calendar."
    fixed = addressed(said)
    assert fixed == ("I added 3 units to your cart. Your second request found hotels in your "
                     "calendar.")
    assert swapped(said, user=False) is not None and swapped(fixed, user=False) is None
    assert addressed("my pleasure, and my name is Ana") == "my pleasure, and my name is Ana"
    # built-in at 3a9de5d, kept: "My booking ID is 56789" for the user's booking
    assert addressed("My booking ID is 56789.") == "Your booking ID is 56789."
    assert swapped("My booking ID is 56789.", user=False) is not None


def test_a_reply_calls_each_record_by_its_kind_and_speaks_only_of_kinds_it_heard_of() -> None:
    # built-in at 3a9de5d, kept: "the order ID C5678" for a cart; "Your booking 'Birthday
    # Party' has been removed" after a calendar event was deleted
    m = good_dialogue()
    m[5] = result("call_2", booking_id="B-77", status="confirmed", cart_id="C5678")
    m[6] = Message(role="assistant", content="Your hotel is booked: the order ID C5678.")
    check = checks.claims_grounded(m, TOOLS)
    assert not check.passed and "calls C5678 a order, but it is a cart" in check.detail
    m[6] = Message(role="assistant", content="Your hotel is booked: cart C5678, booking B-77.")
    assert checks.claims_grounded(m, TOOLS).passed
    m = good_dialogue()[:4] + [Message(role="assistant", content="It is 18 degrees; your "
                                                                 "reservation is kept.")]
    check = checks.claims_grounded(m, TOOLS)
    assert not check.passed and "speaks of 'reservation'" in check.detail
    m[1] = Message(role="user", content="What is the weather in Paris? I reserved a room.")
    assert checks.claims_grounded(m, TOOLS).passed  # the user spoke of it
    m[1] = Message(role="user", content="What is the weather in Paris?")
    for plain in ("It is 18 degrees, in order to say it.", "I sorted them in alphabetical "
                  "order.", "It is 18 degrees; the order of the lines is kept."):
        m[4] = Message(role="assistant", content=plain)
        assert checks.claims_grounded(m, TOOLS).passed, plain  # no record of an order
    m[4] = Message(role="assistant", content="It is 18 degrees. Order 5521 is kept.")
    assert not checks.claims_grounded(m, TOOLS).passed
    m = good_dialogue()  # book_hotel and booking_id speak of bookings
    m[6] = Message(role="assistant", content="Your bookings: B-77.")
    assert checks.claims_grounded(m, TOOLS).passed


def test_a_denial_is_judged_on_the_results_of_the_tools_it_speaks_of() -> None:
    # built-in at 67b6bdc: "I found no flights on May 16th" after a search that found two;
    # a booking since had failed, which let any denial pass
    m = good_dialogue()
    m[2] = call("call_1", "search_hotels", city="Paris")
    m[3] = result("call_1", hotels=[{"hotel_id": "H-1001"}])
    m[5] = result("call_2", error="Hotel H-1001 is full")
    m[6] = Message(role="assistant", content="I found no hotels on that date in Paris.")
    check = checks.denials_grounded(m, TOOLS)
    assert not check.passed and "found no hotels on" in check.detail
    m[6] = Message(role="assistant", content="Sorry, I couldn't find a room: H-1001 is full.")
    assert checks.denials_grounded(m, TOOLS).passed  # of the booking, which failed


def test_a_reply_says_its_change_failed_only_after_a_failure() -> None:
    # built-in at 67b6bdc: "Your request to book a seat on the flight F1234 ... was denied"
    # after {"booking_id": "J5678", "status": "confirmed"}
    m = good_dialogue()
    m[6] = Message(role="assistant", content="Sorry, your booking of H-1001 was denied.")
    check = checks.denials_grounded(m, TOOLS)
    assert not check.passed and "every call since the request succeeded" in check.detail
    m[5] = result("call_2", error="Hotel H-1001 is full")
    assert checks.denials_grounded(m, TOOLS).passed


def test_a_change_acts_on_the_record_its_request_names() -> None:
    # built-in at 3a9de5d, kept: delete_event(1234), event 1234 being "Meeting with John",
    # for "remove the event with title 'Birthday Party'", which no event was
    from naig.stages.checks import other_record

    events = result("c1", events=[{"event_id": "1234", "title": "Meeting with John"},
                                  {"event_id": "5678", "title": "Birthday Party"}])
    asked = Message(role="user", content="I'd like to remove the event 'Birthday Party'.")
    earlier = [call("c1", "list_events", date="2023-03-15"), events, asked]
    wrong = other_record("delete_event", {"event_id": "1234"}, earlier)
    assert wrong is not None and "'Birthday Party'" in wrong
    assert other_record("delete_event", {"event_id": "5678"}, earlier) is None
    assert other_record("get_event", {"event_id": "1234"}, earlier) is None  # no change
    # a name a call passed is a search, not the record's name
    searched = [call("c1", "list_events", title="Birthday Party"), events, asked]
    assert other_record("delete_event", {"event_id": "1234"}, searched) is None
    # a variant is named by the product it lies within
    product = result("c2", name="Water Bottle", variants=[{"item_id": "77", "color": "red"}])
    earlier = [call("c2", "get_product", product_id="P-1"), product,
               Message(role="user", content="Exchange my 'Water Bottle' for the red one.")]
    assert other_record("exchange_items", {"new_item_ids": ["77"]}, earlier) is None
    card = result("c3", payment_methods={"card_1": {"id": "card_1", "brand": "visa"}})
    earlier[2:2] = [call("c3", "get_user", user_id="u1"), card]
    assert other_record("exchange_items", {"new_item_ids": ["77"], "payment_id": "card_1"},
                        earlier) is None  # the card is no 'Water Bottle', nor need be
    assert other_record("exchange_items", {"payment_id": "card_1"}, earlier) is not None
    m = good_dialogue()
    m[3] = result("call_1", temperature=18, hotels=[{"hotel_id": "H-1001", "name": "Ritz"}])
    m[1] = Message(role="user", content="What is the weather in Paris? Book the 'Lumiere'.")
    check = checks.grounded_ids(m, TOOLS)
    assert not check.passed and "book_hotel acts on H-1001" in check.detail


def test_a_reply_tells_each_change_its_calls_made() -> None:
    # built-in at 7e413bc, kept: a reply told the flights a search found and left out the
    # hotel the call before it had booked (B789, $465)
    m = good_dialogue()
    m[6] = Message(role="assistant", content="It is sunny and 18 degrees in Paris.")
    check = checks.results_reported(m, TOOLS)
    assert not check.passed and "what book_hotel did (B-77, confirmed)" in check.detail
    # the reply written again is owed one of what the booking returned, not the weather
    assert "B-77" in checks.owed(m[:6]) and "sunny" not in checks.owed(m[:6])
    assert "sunny" in checks.owed(m[:4])
    for told in ("It is 18 degrees in Paris. Your booking is B-77.",
                 "It is 18 degrees in Paris, and I booked the hotel.",
                 "It is 18 degrees in Paris. Shall I book the hotel again?"):
        m[6] = Message(role="assistant", content=told)
        assert checks.results_reported(m, TOOLS).passed, told


def test_a_turn_in_voice_is_no_request_of_the_assistant_nor_a_models_disclaimer() -> None:
    # built-in at 7e413bc, kept: "I want to book a seat on the flight that departs on 15 Oct
    # 2023" as the assistant's reply; "Sorry, but as an AI language model, I do not have
    # access to a physical store"; a simulated result with "eta": "{estimated_eta}"
    from naig.stages.checks import out_of_voice, swapped
    from naig.tools import degenerate

    assert swapped("Done. I want to book a seat on it.", user=False) is not None
    assert swapped("I want to book a seat on it.", user=True) is None
    assert swapped("I would like to confirm the seat first.", user=False) is None
    assert out_of_voice("Sorry, but as an AI language model, I cannot.") is not None
    assert degenerate({"eta": "{estimated_eta}"}) == "{estimated_eta}"
    assert degenerate({"eta": "<eta>"}) == "<eta>"
    assert degenerate({"text": "Hello {name} and welcome"}) is None  # a template is a value
