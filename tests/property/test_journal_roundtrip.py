"""Whatever is written to the journal is read back identically, whatever the segment size."""

from __future__ import annotations

from arbor.messages import Codec
from arbor.messages.journal import Durability, JournalReader, JournalWriter, RecordKind, decode_record, encode_record
from hypothesis import given
from hypothesis import strategies as st

from tests.property.test_codec import any_message, envelope_strategy

CODEC = Codec()
SEGMENT_BYTES = st.integers(min_value=64, max_value=4096)
RECORDS = st.lists(st.tuples(st.sampled_from(RecordKind), envelope_strategy(any_message())), max_size=40)


def open_writer(path, segment_bytes: int) -> JournalWriter:
    return JournalWriter(
        path, run_id="prop", durability=Durability(mode="rotation"), clock_ns=lambda: 0,
        segment_bytes=segment_bytes, fsync=lambda fd: None,
    )


@given(records=RECORDS, segment_bytes=SEGMENT_BYTES)
def test_message_records_read_back_identical(tmp_path_factory, records, segment_bytes):
    """Any sequence of (kind, envelope) records decodes back to the same sequence, in order."""
    path = tmp_path_factory.mktemp("journal")
    with open_writer(path, segment_bytes) as w:
        indices = [w.append(encode_record(CODEC, kind, env)) for kind, env in records]
    read = list(JournalReader(path).records())
    assert [i for i, _ in read] == indices == list(range(len(records)))
    assert [decode_record(CODEC, payload) for _, payload in read] == records


@given(
    batches=st.lists(st.lists(st.binary(min_size=1, max_size=300), max_size=30), min_size=1, max_size=4),
    segment_bytes=SEGMENT_BYTES,
)
def test_payloads_read_back_identical_across_reopens(tmp_path_factory, batches, segment_bytes):
    """Payloads appended over several writer sessions read back as one gap-free sequence."""
    path = tmp_path_factory.mktemp("journal")
    for batch in batches:
        with open_writer(path, segment_bytes) as w:
            for payload in batch:
                w.append(payload)
    expected = [p for batch in batches for p in batch]
    assert list(JournalReader(path).records()) == list(enumerate(expected))
    report = JournalReader(path).verify()
    assert report.ok and not report.gaps and report.record_count == len(expected)
