"""Tiny upstream files in each source's own format, written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

# ---------------------------------------------------------------- ToolRL (rlla)

RLLA_TOOLS = """1. Name: Get Weather
Description: Current weather of a city.
Parameters: {"city": {"description": "City name", "type": "str", "default": ""}, "unit": {"description": "celsius or fahrenheit", "type": "str, optional", "default": "celsius"}}
2. Name: Search Flights
Description: Find flights between two airports.
Parameters: {"origin": {"description": "IATA code", "type": "string", "default": ""}, "destination": {"description": "IATA code", "type": "string", "default": ""}, "max_stops": {"description": "stops", "type": "int", "default": 1}}"""

RLLA_SYSTEM = (
    "You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks "
    "and provide structured chat responses.\n\n**Available Tools**\nIn your response, you can use the "
    f"following tools:\n{RLLA_TOOLS}\n\n**Steps for Each Turn**\n1. **Think:** ...\n"
)

RLLA_RECORDS = [
    {
        "instruction": RLLA_SYSTEM,
        "input": "**Dialogue Records History**\n<user> What's the weather in Paris? </user>",
        "output": '<think> The user wants the weather; a <tool_call> to Get Weather fits. </think>\n'
                  '<tool_call>\n{"name": "Get Weather", "parameters": {"city": "Paris"}}\n</tool_call>',
    },
    {
        "instruction": RLLA_SYSTEM,
        "input": "**Dialogue Records History**\n<user> Flights from SFO to JFK? </user>\n\n"
                 "<think> I should use the appropriate tool. </think>\n<tool_call>\n"
                 '{"name": "Search Flights", "parameters": {"origin": "SFO", "destination": "JFK"}}\n</tool_call>\n'
                 '<obs> [{"name": "Search Flights", "results": {"flights": ["UA1"]}}] </obs>\n\n'
                 "<think> I should directly respond. </think>\n<response> UA1 flies. </response>\n\n"
                 "<user> And the weather in New York, in fahrenheit? </user>",
        "output": '<think> Weather call. </think>\n<tool_call>\n'
                  '{"name": "Get Weather", "parameters": {"city": "New York", "unit": "fahrenheit"}}\n'
                  '</tool_call>',
    },
    {  # the call line is not JSON
        "instruction": RLLA_SYSTEM,
        "input": "**Dialogue Records History**\n<user> Weather in Rome? </user>",
        "output": '<think> ok </think>\n<tool_call>\n{"name": "Get Weather", "parameters": {city: Rome}}\n</tool_call>',
    },
    {  # calls a tool the prompt does not offer
        "instruction": RLLA_SYSTEM,
        "input": "**Dialogue Records History**\n<user> Book me a hotel in Oslo please. </user>",
        "output": '<think> ok </think>\n<tool_call>\n{"name": "Book Hotel", "parameters": {"city": "Oslo"}}\n</tool_call>',
    },
    {  # a direct answer, no call
        "instruction": RLLA_SYSTEM,
        "input": "**Dialogue Records History**\n<user> Thanks, that's all! </user>",
        "output": "<think> Nothing to call. </think>\n<response> You're welcome! </response>",
    },
]

# ---------------------------------------------------------------- ToolACE

TOOLACE_FUNCTIONS = [
    {"name": "Get Weather", "description": "Weather of a city for some days.",
     "parameters": {"type": "dict", "properties": {
         "city": {"type": "string", "description": "City"},
         "days": {"type": "integer", "description": "Days ahead"}}, "required": ["city"]},
     "required": None},
    {"name": "Convert Units", "description": "Convert a value.",
     "parameters": {"type": "dict", "properties": {
         "value": {"type": "float", "description": "Value"},
         "flags": {"type": "array", "items": {"type": "boolean"}, "description": "Flags"}},
         "required": ["value"]}},
]
TOOLACE_SYSTEM = (
    "You are an expert in composing functions. You are given a question and a set of possible functions.\n"
    "Here is a list of functions in JSON format that you can invoke:\n" + json.dumps(TOOLACE_FUNCTIONS)
    + ". \nShould you decide to return the function call(s), put them in the format of [func1(params)]."
)

TOOLACE_RECORDS = [
    {
        "system": TOOLACE_SYSTEM,
        "conversations": [
            {"from": "user", "value": "Weather in Paris for 3 days, and convert -2.5 with flags on/off."},
            {"from": "assistant", "value": '[Get Weather(city="Paris", days=3), Convert Units(value=-2.5, flags=[true, False])]'},
            {"from": "tool", "value": '[{"name": "Get Weather", "results": {"temp": 21}}, {"name": "Convert Units", "results": {"out": 1}}]'},
            {"from": "assistant", "value": "It is 21 degrees in Paris; the conversion gives 1."},
            {"from": "user", "value": "Now Berlin, just today."},
            {"from": "assistant", "value": '[Get Weather(city="Berlin")]'},
        ],
    },
    {
        "system": TOOLACE_SYSTEM,
        "conversations": [
            {"from": "user", "value": "Convert 4 please."},
            {"from": "assistant", "value": "[Convert Units(4)]"},  # positional: cannot be read
        ],
    },
    {"system": "You are a helpful assistant.", "conversations": [{"from": "user", "value": "hi"}]},
]

# ---------------------------------------------------------------- xLAM / Hammer

XLAM_TOOLS = [
    {"name": "get_stock_price", "description": "Latest price of a stock.",
     "parameters": {"symbol": {"description": "Ticker", "type": "str", "default": "AAPL"},
                    "exchange": {"description": "Exchange", "type": "str, optional", "default": ""}}},
    {"name": "sum_list", "description": "Sum of integers.",
     "parameters": {"numbers": {"description": "Integers", "type": "List[int]"}}},
]


def xlam_record(i: int, query: str, answers: list[dict], tools: list[dict] | None = None) -> dict:
    return {"id": i, "query": query, "tools": json.dumps(tools or XLAM_TOOLS), "answers": json.dumps(answers)}


LONG_QUERY = ("What is the latest stock price of the company whose ticker symbol is MSFT on the NASDAQ "
              "exchange, as I want to compare it with the price I saw yesterday morning before the market opened")

XLAM_RECORDS = [
    xlam_record(0, "Price of TSLA?", [{"name": "get_stock_price", "arguments": {"symbol": "TSLA"}}]),
    xlam_record(1, "Sum 1, 2 and 3, and the price of IBM on NYSE.",
                [{"name": "sum_list", "arguments": {"numbers": [1, 2, 3]}},
                 {"name": "get_stock_price", "arguments": {"symbol": "IBM", "exchange": "NYSE"}}]),
    xlam_record(2, "Price of TSLA?", [{"name": "get_stock_price", "arguments": {"symbol": "TSLA"}}]),  # exact dup of 0
    xlam_record(3, LONG_QUERY, [{"name": "get_stock_price", "arguments": {"symbol": "MSFT", "exchange": "NASDAQ"}}]),
    xlam_record(4, LONG_QUERY.replace("yesterday", "today"),  # near duplicate of 3
                [{"name": "get_stock_price", "arguments": {"symbol": "MSFT", "exchange": "NASDAQ"}}]),
    xlam_record(5, "Sum these: a, b", [{"name": "sum_list", "arguments": {"numbers": ["a", "b"]}}]),  # type
    xlam_record(6, "Price please", [{"name": "get_stock_price", "arguments": {"exchange": "NYSE"}}]),  # required
    xlam_record(7, "Price of X with currency", [{"name": "get_stock_price",
                                                  "arguments": {"symbol": "X", "currency": "EUR"}}]),  # unknown
    {"id": 8, "query": "broken answers", "tools": json.dumps(XLAM_TOOLS), "answers": "[{not json"},
]

HAMMER_RECORDS = [
    xlam_record(100, "Tell me a joke about cats.", []),
    xlam_record(101, "Total of 10 and 32?", [{"name": "sum_list", "arguments": {"numbers": [10, 32]}}]),
]


# ---------------------------------------------------------------- writers


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=1))
    return path


def write_jsonl(path: Path, records: list, extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_parquet(path: Path, records: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def write_all(folder: Path) -> dict[str, Path]:
    """One file per source format; the xLAM file ends with a line that is not JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "rlla": write_json(folder / "rlla.json", RLLA_RECORDS),
        "toolace": write_json(folder / "toolace.json", TOOLACE_RECORDS),
        "xlam": write_jsonl(folder / "xlam.jsonl", XLAM_RECORDS, extra_lines=("{this line is not json",)),
        "hammer": write_jsonl(folder / "hammer.jsonl", HAMMER_RECORDS),
    }
