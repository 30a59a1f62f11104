"""The SQS samples, each broken and fixed, against the embedded moto server: the visibility timeout equal to the
function timeout under throttling (messages processed twice), and its fix."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from sqs_support import moto_installed

from conftest import require
from emulator.config.settings import ServerConfig
from emulator.testing import CollectingSink, EmulatorThread

pytestmark = pytest.mark.timeout(120)

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "python"


def processed_times(directory: Path) -> dict[int, int]:
    return {int(p.name): len(p.read_text().split()) for p in directory.iterdir()}


@pytest.mark.parametrize("variant", ["broken", "fixed"])
def test_visibility_timeout_equal_to_the_function_timeout(variant, tmp_path):
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    config = ServerConfig.load(file=SAMPLES / "sqs_visibility" / f"{variant}.toml", cli={"port": 0}, environ={})
    function = dataclasses.replace(config.functions[0], env={"PROCESSED_DIR": str(tmp_path)})
    config = config.replace(functions=(function,))
    with EmulatorThread(config, sink=CollectingSink()) as emu:
        assert emu.emulator is not None and emu.emulator.events.mappings is not None
        (mapping,) = emu.emulator.events.mappings.mappings.values()
        sqs = emu.emulator.events.endpoint.client("sqs")  # type: ignore[union-attr]
        for n in range(6):
            sqs.send_message(QueueUrl=mapping.queue.url, MessageBody=json.dumps({"id": n}))
        if variant == "broken":
            # A message that waited for the one environment is visible again before its invocation ends.
            emu.wait_for(lambda e: any(times > 1 for times in processed_times(tmp_path).values()), timeout_s=60)
            emu.wait_for(lambda e: len(processed_times(tmp_path)) == 6, timeout_s=60)  # duplicated, none lost
            assert mapping.counts["throttled"] > 0
        else:
            emu.wait_for(lambda e: mapping.counts["deleted"] == 6, timeout_s=60)
            assert processed_times(tmp_path) == dict.fromkeys(range(6), 1)
            assert mapping.counts["throttled"] > 0  # throttled as well, but within the visibility timeout
            attributes = sqs.get_queue_attributes(
                QueueUrl=mapping.queue.url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
