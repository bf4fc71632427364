"""The unit-cost benchmark's parsers and its profile grouping (bench/unit_costs_probe.py, bench/profile_groups.py)
on made-up input: the harness's own INFO call is taken off exactly, sockets are told apart by owner, and a
profile's samples land in the area of the nearest non-transparent frame."""

import pytest

from bench.profile_groups import EVENT_LOOP, classify, frame_area, group, per_request
from bench.unit_costs_probe import (
    INFO_COMMAND,
    SocketCounters,
    monitor_counts,
    parse_info,
    parse_ss,
    redis_delta,
    tcp_delta,
)

INFO_BEFORE = ("# Stats\r\ntotal_commands_processed:100\r\ntotal_net_input_bytes:1000\r\n"
               "total_net_output_bytes:5000\r\n"
               "total_reads_processed:50\r\ntotal_writes_processed:40\r\nused_memory:1048576\r\n"
               "# Commandstats\r\ncmdstat_get:calls=10,usec=20,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n"
               "cmdstat_info:calls=3,usec=300,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n"
               "# Keyspace\r\ndb0:keys=7,expires=2,avg_ttl=0\r\ndb9:keys=3,expires=0,avg_ttl=0\r\n")
INFO_AFTER = INFO_BEFORE.replace("total_commands_processed:100", "total_commands_processed:113") \
    .replace("total_net_input_bytes:1000", "total_net_input_bytes:1300") \
    .replace("total_net_output_bytes:5000", "total_net_output_bytes:9000") \
    .replace("total_reads_processed:50", "total_reads_processed:56") \
    .replace("total_writes_processed:40", "total_writes_processed:46") \
    .replace("cmdstat_get:calls=10,usec=20", "cmdstat_get:calls=22,usec=50") \
    .replace("cmdstat_info:calls=3", "cmdstat_info:calls=4").replace("db0:keys=7", "db0:keys=9")


def test_info_is_parsed_with_commands_stats_and_keys() -> None:
    reading = parse_info(INFO_BEFORE, 1234)
    assert reading.commands == {"get": (10, 20), "info": (3, 300)}
    assert reading.stats["total_net_output_bytes"] == 5000
    assert reading.keys == 10
    assert reading.reply_bytes == 1234


def test_redis_delta_takes_off_exactly_the_harness_info_call() -> None:
    delta = redis_delta(parse_info(INFO_BEFORE, 4000), parse_info(INFO_AFTER, 4100))
    assert delta["calls"] == {"get": 12}  # the one INFO in the window is the harness's own
    assert delta["stats"]["total_commands_processed"] == 12
    assert delta["stats"]["total_net_input_bytes"] == 300 - len(INFO_COMMAND)
    assert delta["stats"]["total_net_output_bytes"] == 4000 - 4000  # the first reading's reply, nothing else
    assert delta["stats"]["total_reads_processed"] == 5
    assert delta["keys"] == 2


def test_redis_delta_keeps_info_calls_the_gateway_made() -> None:
    after = parse_info(INFO_AFTER.replace("cmdstat_info:calls=4", "cmdstat_info:calls=6"), 0)
    assert redis_delta(parse_info(INFO_BEFORE, 0), after)["calls"]["info"] == 2


SS = """127.0.0.1:40001 127.0.0.1:6390 users:(("llm-gateway",pid=11,fd=9))
\t cubic wscale:7,7 bytes_sent:500 bytes_acked:501 bytes_received:900 segs_out:12 data_segs_out:10 data_segs_in:9
127.0.0.1:40002 127.0.0.1:6390 users:(("llm-gateway",pid=22,fd=7))
\t cubic bytes_acked:101 bytes_received:300 data_segs_out:4 data_segs_in:4
127.0.0.1:40003 127.0.0.1:6390 users:(("python",pid=33,fd=3))
\t cubic bytes_sent:14 bytes_received:7 data_segs_out:1 data_segs_in:1
"""


def test_ss_output_gives_owner_and_counters_per_socket() -> None:
    sockets = parse_ss(SS, 6390)
    assert set(sockets) == {"127.0.0.1:40001", "127.0.0.1:40002", "127.0.0.1:40003"}
    assert sockets["127.0.0.1:40001"].pid == 11
    assert sockets["127.0.0.1:40001"].counters["data_segs_out"] == 10


def test_tcp_delta_groups_by_process_counts_new_and_closed_sockets() -> None:
    before = parse_ss(SS, 6390)
    after = {"127.0.0.1:40001": SocketCounters(11, {"bytes_sent": 800, "bytes_received": 1500, "data_segs_out": 16,
                                                   "data_segs_in": 15}),
             "127.0.0.1:40009": SocketCounters(11, {"bytes_sent": 50, "bytes_received": 60, "data_segs_out": 2,
                                                   "data_segs_in": 2}),
             "127.0.0.1:40003": SocketCounters(33, {"data_segs_out": 9})}
    delta = tcp_delta(before, after, {"api": [11], "worker": [22]})
    assert delta["api"] == {"round_trips": 8, "segments_in": 8, "bytes_out": 350, "bytes_in": 660,
                            "sockets_opened": 1, "sockets_closed": 0}
    assert delta["worker"]["sockets_closed"] == 1 and delta["worker"]["round_trips"] == 0
    assert "other" not in delta  # the harness's socket (pid 33) belongs to no group


def test_monitor_lines_are_counted_by_origin() -> None:
    lines = ['+1.1 [0 127.0.0.1:40001] "EVALSHA" "abc" "1" "k"\n', '+1.2 [0 lua] "hget" "k" "f"\n',
             '+1.3 [0 127.0.0.1:40002] "GET" "x"\n', '+1.4 [0 127.0.0.1:49999] "INFO"\n', "garbage\n"]
    counts = monitor_counts(lines, {"127.0.0.1:40001": "api", "127.0.0.1:40002": "worker"})
    assert counts == {"api": {"evalsha": 1}, "lua": {"hget": 1}, "worker": {"get": 1}, "other": {"info": 1}}


def test_frames_map_to_areas_and_helpers_are_transparent() -> None:
    site = "/work/main/.venv/lib/python3.11/site-packages"
    assert frame_area(f"{site}/redis/asyncio/client.py") == "Redis client"
    assert frame_area("/root/.pyenv/versions/3.11.7/lib/python3.11/json/encoder.py") == "JSON encode/decode"
    assert frame_area("/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/selector_events.py") is None
    assert frame_area(f"{site}/h11/_connection.py") is None
    assert frame_area("/work/wt-x/api/deps.py").startswith("auth + admission")
    assert frame_area("/work/wt-x/worker/doorbell.py") == "arq + our poll loop"


def test_a_socket_write_belongs_to_the_library_that_made_it() -> None:
    stack = ["run (asyncio/runners.py:1)", "execute (redis/asyncio/client.py:2)",
             "write (asyncio/selector_events.py:3)"]
    assert classify(stack) == ("Redis client", "-")
    sdk = ["_execute (worker/jobs.py:1)", "post (openai/_base_client.py:2)", "send (httpx/_client.py:3)",
           "send (h11/_connection.py:4)"]
    assert classify(sdk) == ("httpx/httpcore transport", "SDK request pipeline (openai/anthropic)")
    assert classify(["Runner.run (asyncio/runners.py:1)"])[0] == EVENT_LOOP


def test_group_drops_idle_leaves_and_scales_to_cpu_per_request() -> None:
    raw = ("main (cli/main.py:1);execute (redis/asyncio/client.py:2) 30\n"
           "main (cli/main.py:1);dumps (json/__init__.py:3) 10\n"
           "main (cli/main.py:1);EpollSelector.select (selectors.py:4) 500\n")
    grouped = group(raw)
    assert grouped.busy == 40 and grouped.idle == 500
    rows = {row["area"]: row for row in per_request(grouped, cpu_ms_per_request=2.0)}
    assert rows["Redis client"]["us_per_request"] == 1500.0
    assert rows["JSON encode/decode"]["us_per_request"] == 500.0


def test_profile_cells_are_named_as_the_measured_ones() -> None:
    from bench.unit_costs import parse_cell
    assert parse_cell("plain/c16") == ("plain", 16)
    assert parse_cell("stream/c1") == ("stream", 1)
    for bad in ("plain", "plain/16", "chat/c4", "stream/cx"):
        with pytest.raises(ValueError, match="plain/cN"):
            parse_cell(bad)
