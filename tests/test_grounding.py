"""Grounding: which arguments name entities, what values they may take at a point of a
dialogue, and the schemas that make anything else impossible to decode."""

from __future__ import annotations

import json

from naig.dialogue import Message
from naig.grounding import (
    candidates,
    dependency_order,
    entity_names,
    ground,
    is_entity,
    produces,
    seen,
    vocabulary,
    with_sources,
)
from naig.pools import load_builtin
from naig.tools import tool_from_dict

TRAVEL = {t.name: t for t in load_builtin("travel")}
SHOP = {t.name: t for t in load_builtin("shop")}


def _user(text: str) -> Message:
    return Message(role="user", content=text)


def _result(value: object) -> Message:
    return Message(role="tool", tool_call_id="c", content=json.dumps(value))


def test_entity_arguments_are_read_from_names_and_descriptions() -> None:
    assert is_entity("hotel_id", {"type": "string"})
    assert is_entity("item_ids", {"type": "array", "items": {"type": "string"}})
    assert is_entity("flight_number", {"type": "string"})
    assert is_entity("tweet_id", {"type": "integer"})
    assert not is_entity("city", {"type": "string"})
    assert not is_entity("order_id", {"type": "string", "enum": ["a", "b"]})  # closed already
    described = {"type": "string", "description": "A code returned by search_flights"}
    assert is_entity("fare", described, ["search_flights"]) and not is_entity("fare", described)
    assert entity_names(TRAVEL["book_hotel"], TRAVEL.values()) == {"hotel_id"}


def test_a_call_cannot_name_an_id_nobody_gave() -> None:
    book = TRAVEL["book_hotel"]
    assert ground(book, TRAVEL.values(), seen([_user("Book a hotel in Lisbon")])) is None


def test_an_id_the_user_just_stated_or_a_result_returned_can_be_named() -> None:
    book = TRAVEL["book_hotel"]
    schema = ground(book, TRAVEL.values(), seen([_user("Book hotel HT-204 for 2 nights")]))
    assert schema is not None and schema["properties"]["hotel_id"]["enum"] == ["HT-204"]
    found = seen([_user("Hotels in Lisbon for 2 nights"),
                  _result({"hotels": [{"hotel_id": "H-77", "name": "Sol", "price_usd": 120},
                                      {"hotel_id": "H-78", "name": "Mar", "price_usd": 90}]})])
    schema = ground(book, TRAVEL.values(), found)
    assert schema is not None and schema["properties"]["hotel_id"]["enum"] == ["H-77", "H-78"]
    assert schema["properties"]["nights"] == book.parameters["properties"]["nights"]  # free


def test_values_keep_the_kind_results_showed_them_under() -> None:
    # a product ID the user repeats is no cart ID; an amount is no ID at all
    found = seen([_result({"products": [{"product_id": "1234567890", "price": 1200.0}]}),
                  _user("Order product 1234567890 for $1200 please")])
    assert candidates("cart_id", "string", found) == []
    assert candidates("product_id", "string", found) == ["1234567890"]
    place = SHOP["place_order"]
    assert ground(place, SHOP.values(), found) is None


def test_a_value_stated_in_a_requests_details_fills_only_its_own_kind() -> None:
    # built-in at d9e8d79: "Details: max price 1000" became get_order_status("1000")
    found = seen([_user("The cheapest laptop, please. Details: max price 1000; product id "
                        "P-1001; sort price low.")])
    assert candidates("order_id", "string", found) == []
    assert candidates("product_id", "string", found) == ["P-1001"]
    assert candidates("order_id", "string", seen([_user("Where is my order 1000?")])) == ["1000"]
    said = seen([_user("Where is order 1000? Details: max price 1000; booking reference "
                       "B-77; account mia_li_3668.")])  # said outside the details too
    assert "1000" in candidates("order_id", "string", said)
    # a label that names without saying what: any kind may take it
    assert {"B-77", "mia_li_3668"} <= set(candidates("booking_id", "string", said))


def test_where_the_state_is_known_words_must_name_what_exists() -> None:
    state = {"users": {"mia_li_3668": {"user_id": "mia_li_3668", "orders": ["#W4316152"]}}}
    known = vocabulary(state)
    found = seen([_user("I'm mia_li_3668; where are orders #W4316152 and #W0000001?")], known)
    assert candidates("order_id", "string", found) == ["#W4316152"]  # the other is invented
    assert candidates("user_id", "string", found) == ["mia_li_3668"]


def test_values_the_dialogue_showed_come_before_what_exists_elsewhere_in_the_state() -> None:
    # two customers' orders exist; once the first customer's are listed, an order ID
    # takes one of those, not the other customer's (seen in kept tau2:retail data)
    orders = {"type": "object", "required": ["order_id"],
              "properties": {"order_id": {"type": "string"}}}
    cancel = tool_from_dict({"name": "cancel_pending_order", "parameters": orders}, "t")
    state = {"users": {"juan_kim_6026": {"orders": ["#W2002172"]},
                       "fatima_muller_6713": {"orders": ["#W9962383"]}}}
    known = vocabulary(state)
    everything = seen([Message(role="system", content=json.dumps(state))], known)
    shown = seen([_result({"user_id": "juan_kim_6026", "orders": ["#W2002172"]})], known)
    schema = ground(cancel, [cancel], everything + shown, prefer=[shown])
    assert schema is not None and schema["properties"]["order_id"]["enum"] == ["#W2002172"]
    schema = ground(cancel, [cancel], everything, prefer=[])  # nothing shown yet: the state
    assert schema is not None
    assert set(schema["properties"]["order_id"]["enum"]) == {"#W2002172", "#W9962383"}


def test_errors_and_the_assistants_words_ground_nothing() -> None:
    found = seen([_result({"error": "Hotel H-99 not found"}),
                  Message(role="assistant", content="Your hotel is H-55.")])
    assert candidates("hotel_id", "string", found) == []


def test_a_date_as_people_write_it_names_no_record() -> None:
    # MAS's assistant placed an order with cart_id="12/07/2023", the user's check-in date
    found = seen([_user("Check in 12/07/2023 or 12.07.2023, then order with cart C-12.")])
    assert candidates("cart_id", "string", found) == ["C-12"]


def test_tools_are_ordered_by_the_data_that_flows_between_them() -> None:
    assert produces(TRAVEL["search_hotels"], TRAVEL["book_hotel"])
    assert not produces(TRAVEL["book_hotel"], TRAVEL["search_hotels"])
    assert dependency_order(["book_hotel", "get_weather", "search_hotels"], TRAVEL) == \
        ["get_weather", "search_hotels", "book_hotel"]
    # a source is added where nothing earlier produces what a tool needs, if it can itself
    # be served; the user states a booking's ID (booking needs a search first)
    assert with_sources(["book_flight"], [], TRAVEL) == ["search_flights", "book_flight"]
    assert with_sources(["book_flight"], ["search_flights"], TRAVEL) == ["book_flight"]
    assert with_sources(["cancel_booking"], [], TRAVEL) == ["cancel_booking"]


def test_nested_and_list_entity_arguments_are_grounded_too() -> None:
    tool = tool_from_dict({"name": "exchange", "parameters": {"type": "object", "properties": {
        "order_id": {"type": "string"},
        "item_ids": {"type": "array", "items": {"type": "string"}},
        "flights": {"type": "array", "items": {"type": "object", "properties": {
            "flight_number": {"type": "string"}, "date": {"type": "string"}},
            "required": ["flight_number"]}}},
        "required": ["order_id", "item_ids", "flights"]}}, "test")
    found = seen([_result({"order_id": "#W1", "items": [{"item_id": "I-1"}, {"item_id": "I-2"}],
                           "flights": [{"flight_number": "HAT170"}]})])
    schema = ground(tool, [tool], found)
    assert schema is not None
    assert schema["properties"]["item_ids"]["items"]["enum"] == ["I-1", "I-2"]
    assert schema["properties"]["flights"]["items"]["properties"]["flight_number"]["enum"] \
        == ["HAT170"]


def test_chains_follow_the_data_flow_and_prefer_tools_not_used_yet() -> None:
    import random

    from naig.grounding import chains

    shop = load_builtin("shop")
    for seed in range(20):
        plan = chains(shop, [2, 2], random.Random(seed))
        assert plan is not None and [len(c) for c in plan] == [2, 2]
        flat = [n for c in plan for n in c]
        # nothing is called before what produces its ID, unless nothing can produce it
        for k, name in enumerate(flat):
            needs = [p for p in shop if produces(p, SHOP[name])]
            assert not needs or any(p.name in flat[:k] for p in needs), (seed, plan)
    assert chains([tool_from_dict({"name": "a"}, "t"), tool_from_dict({"name": "b"}, "t")],
                  [2], random.Random(0)) is None  # no data flow known: the planner chooses


def test_a_tool_that_undoes_is_never_chained_after_the_tool_that_made_its_entity() -> None:
    import random

    from naig.grounding import chains, undoes

    pools = {name: load_builtin(name) for name in ("shop", "travel", "office")}
    by = {t.name: t for tools in pools.values() for t in tools}
    assert undoes(by["book_hotel"], by["cancel_booking"])
    assert undoes(by["create_event"], by["delete_event"])
    assert not produces(by["place_order"], by["cancel_order"])
    assert produces(by["place_order"], by["get_order_status"])  # checking is not undoing
    assert not undoes(by["list_events"], by["delete_event"])  # a lookup feeds it still
    camel = tool_from_dict({"name": "cancelBooking"}, "t")
    assert undoes(by["book_flight"], camel)
    cancelled = tool_from_dict({"name": "cancel_reservation", "parameters": {
        "type": "object", "properties": {"reservation_id": {"type": "string"}}},
        "response": {"type": "object", "properties": {
            "reservation_id": {"type": "string"}, "payment_id": {"type": "string"}}}}, "t")
    update = tool_from_dict({"name": "update_reservation_flights", "parameters": {
        "type": "object", "properties": {"reservation_id": {"type": "string"},
                                         "payment_id": {"type": "string"}}}}, "t")
    assert not produces(cancelled, update)  # what a cancellation returns is gone
    for name, tools in pools.items():
        for seed in range(30):
            plan = chains(tools, [2, 3], random.Random(seed)) or []
            for chain in plan:
                pairs = zip(chain, chain[1:], strict=False)
                assert not any(undoes(by[a], by[b]) for a, b in pairs), (name, seed, plan)


def test_a_result_shape_is_read_from_an_observed_result() -> None:
    from naig.grounding import probe_arguments, schema_of

    observed = {"user_id": "mia_li_3668", "orders": ["#W4316152"],
                "payment_methods": {"credit_card_1": {"source": "credit_card",
                                                      "id": "credit_card_1"}}}
    tool = tool_from_dict({"name": "get_user_details", "parameters": {
        "type": "object", "properties": {"user_id": {"type": "string"}},
        "required": ["user_id"]}}, "t")
    order = tool_from_dict({"name": "get_order_details", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"]}}, "t")
    pay = tool_from_dict({"name": "pay", "parameters": {
        "type": "object", "properties": {"payment_method_id": {"type": "string"}},
        "required": ["payment_method_id"]}}, "t")
    described = tool.model_copy(update={"result_schema": schema_of(observed)})
    assert produces(described, order) and produces(described, pay)
    assert not produces(tool, order)  # nothing known of its results
    known = vocabulary({"users": {"mia_li_3668": {"user_id": "mia_li_3668"}}})
    assert probe_arguments(tool, known) == {"user_id": "mia_li_3668"}
    assert probe_arguments(order, known) is None  # no order in that state


def test_a_bare_result_takes_the_fields_the_state_has_it_under() -> None:
    known = vocabulary({"users": {"mia_li_3668": {"user_id": "mia_li_3668",
                                                  "orders": ["#W4316152"]}}})
    found = seen([_result("mia_li_3668")], known)  # find_user_id_by_email's answer
    assert candidates("user_id", "string", found) == ["mia_li_3668"]
    assert candidates("order_id", "string", found) == []  # a user ID is no order ID


def test_names_relate_as_whole_words_and_plurals() -> None:
    from naig.grounding import related

    assert related("orders", "order_id") and related("item_id", "new_item_ids")
    assert related("addresses", "address_id") and related("id", "hotel_id")
    assert not related("border", "order_id") and not related("status", "statu_id")
    assert not related("number", "order_id")  # a bare number names nothing in particular


def test_small_numbers_the_user_says_are_values_but_times_and_amounts_are_not() -> None:
    found = seen([_user("Comment on tweet 2 at 10:30 for $50, on the 5th.")])
    assert [v.value for v in found] == ["2"]


def test_a_simulated_result_must_have_every_field_but_an_error() -> None:
    from naig.tools import simulated_results

    schema = simulated_results({"type": "object", "properties": {
        "booking_id": {"type": "string"}, "error": {"type": "string"}}})
    assert schema["required"] == ["booking_id"]


def test_a_value_called_by_another_kinds_name_is_mislabeled() -> None:
    # tau2:airline's planner wrote "the status of flight DE23CA", a reservation; the call
    # then looked up another flight
    from naig.grounding import mislabeled

    known = vocabulary({"reservations": {"DE23CA": {"reservation_id": "DE23CA",
                                                    "user_id": "aarav_lee_9671",
                                                    "flights": [{"flight_number": "HAT069"}]}},
                        "users": {"aarav_lee_9671": {"payment_methods": {
                            "credit_card_1977273": {"id": "credit_card_1977273"}}}}})
    assert mislabeled("the status of flight DE23CA", known) == \
        "calls DE23CA a flight, but it is a reservation"
    assert mislabeled("cancel user HAT069's trip", known) is not None
    for fine in ("cancel reservation DE23CA for user aarav_lee_9671",
                 "the status of flight number HAT069", "my user id is aarav_lee_9671",
                 "pay with credit card credit_card_1977273",  # "card" names no field
                 "the flight X9Y8Z7 I heard of"):  # exists nowhere: another rule's business
        assert mislabeled(fine, known) is None, fine


def test_an_all_capitals_id_the_state_holds_is_a_value_a_user_names() -> None:
    # tau2:airline's reservation IDs often have no digit ("IWKGVL"): named in a goal, the
    # opening looked up another reservation of the user's
    from naig.grounding import mislabeled

    known = vocabulary({"reservations": {"IWKGVL": {"reservation_id": "IWKGVL"}},
                        "flights": {"HAT083": {"flight_number": "HAT083"}}})
    found = seen([_user("PLEASE show me reservation IWKGVL.")], known)
    assert candidates("reservation_id", "string", found) == ["IWKGVL"]
    assert seen([_user("PLEASE show me reservation IWKGVL.")]) == []  # no state: no token
    assert mislabeled("the status of flight IWKGVL", known) is not None
