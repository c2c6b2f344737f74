"""Every recording says what it is: venue, market and symbols come from the recording (issue 14)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from arbor.actors.replay.cli import main as replay_main
from arbor.adapters.recorded.detect import UnsupportedRecording, detect_recording
from arbor.adapters.recorded.source import recordings_of
from arbor.adapters.testing.hyperliquid_server import cassette_answers

from tests.conftest import REPO_ROOT

USDM = "binance_usdm/usdm_btcusdt_20240808.gz"
SPOT_CF3 = "binance_spot/cryptofeed_binance_spot_2021.jsonl.gz"
USDM_CF3 = "binance_usdm_multi/cryptofeed_binance_futures_2021.jsonl.gz"


def write_hbt(path: Path, lines: list[tuple[int, bytes]]) -> Path:
    with gzip.open(path, "wb") as fh:
        for ts, payload in lines:
            fh.write(b"%d %s\n" % (ts, payload))
    return path


def spot_hbt(shared_data: Path, tmp_path: Path) -> Path:
    """The real spot frames of NKNUSDT (websocket and its depth snapshot) from the CF3 sample, as HBT lines."""
    lines = []
    with gzip.open(shared_data / SPOT_CF3, "rb") as fh:
        for raw in fh:
            rec = json.loads(raw)
            ns = int(Decimal(str(rec.get("ts", 0))) * 1_000_000_000)
            ours = rec["data"].startswith('{"stream":"nknusdt@') if rec["t"] == "recv" else (
                rec["t"] == "http" and "/depth" in rec["url"] and "NKNUSDT" in rec["url"])
            if ours:
                lines.append((ns, rec["data"].encode()))
    return write_hbt(tmp_path / "spot_nknusdt_20211012.gz", sorted(lines, key=lambda x: x[0]))


def hyperliquid_hbt(shared_data: Path, tmp_path: Path) -> Path:
    """Real Hyperliquid messages (an l2Book answer in its websocket envelope, allMids) as HBT lines of one coin."""
    book = cassette_answers(shared_data / "hyperliquid" / "sdk_cassettes")["l2Book"]
    mids = json.loads((shared_data / "hyperliquid" / "nautilus" / "ws_allmids.json").read_text())
    mids["data"]["mids"][book["coin"]] = "2.1107"
    t0 = 1_700_000_000_000_000_000
    lines = [(t0 + i * 1_000_000, json.dumps(f, separators=(",", ":")).encode())
             for i, f in enumerate([{"channel": "l2Book", "data": book}, mids] * 20)]
    return write_hbt(tmp_path / f"hyperliquid_{book['coin'].lower()}_20240101.gz", lines)


def coinm_hbt(tmp_path: Path) -> Path:
    """COIN-M frames in Binance's documented delivery format (symbol BTCUSD_PERP, quantity in contracts)."""
    trade = {"stream": "btcusd_perp@trade", "data": {"e": "trade", "E": 1723161256299, "T": 1723161256298,
             "s": "BTCUSD_PERP", "t": 10001, "p": "61800.1", "q": "4", "X": "MARKET", "m": True}}
    book = {"stream": "btcusd_perp@bookTicker", "data": {"e": "bookTicker", "u": 17242169, "s": "BTCUSD_PERP",
            "ps": "BTCUSD", "b": "61800.0", "B": "120", "a": "61800.1", "A": "80", "T": 1723161256313, "E": 1723161256313}}
    lines = [(1_723_161_256_300_000_000 + i, json.dumps(f).encode()) for i, f in enumerate([book, trade] * 5)]
    return write_hbt(tmp_path / "coinm_perp_20240808.gz", lines)


def whatif_report(capsys, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "r.json"
    code = replay_main(["whatif", *args, "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    return json.loads(out.read_text())["report"]


@pytest.mark.parametrize(("name", "venue", "symbols"), [
    (USDM, "binance_usdm", ("BTCUSDT",)),
    (SPOT_CF3, "binance_spot", ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")),
    (USDM_CF3, "binance_usdm", ("SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT")),
])
def test_real_recordings_name_their_venue_and_symbols(shared_data: Path, name: str, venue: str, symbols: tuple) -> None:
    """Each real recording is detected as its own venue, with the symbols it carries."""
    info = detect_recording(shared_data / name)
    assert (info.venue, info.symbols) == (venue, symbols)


def test_spot_hbt_replays_as_spot_without_an_override(shared_data: Path, tmp_path: Path, capsys) -> None:
    """A Binance spot HBT recording replays with zero decode failures and no venue override."""
    report = whatif_report(capsys, tmp_path, "--hbt", str(spot_hbt(shared_data, tmp_path)))
    assert report["decode_failures"] == 0 and report["market_frames"] > 50


def test_spot_cf3_replays_through_hbt_option(shared_data: Path, tmp_path: Path, capsys) -> None:
    """The real spot CF3 sample replays with its four pairs and zero decode failures."""
    report = whatif_report(capsys, tmp_path, "--hbt", str(shared_data / SPOT_CF3))
    assert report["decode_failures"] == 0 and report["market_frames"] > 200


def test_usdm_replays_without_decode_failures(shared_data: Path, tmp_path: Path, capsys) -> None:
    """The real USD-M recording still replays as USD-M."""
    report = whatif_report(capsys, tmp_path, "--hbt", str(shared_data / USDM), "--limit", "5000")
    assert report["decode_failures"] == 0 and report["market_frames"] == 5000


def test_hyperliquid_hbt_replays_as_hyperliquid(shared_data: Path, tmp_path: Path, capsys) -> None:
    """A Hyperliquid HBT recording replays with zero decode failures and no venue override."""
    report = whatif_report(capsys, tmp_path, "--hbt", str(hyperliquid_hbt(shared_data, tmp_path)))
    assert report["decode_failures"] == 0 and report["market_frames"] == 40


def test_configured_venue_contradicting_the_recording_is_exit_2(shared_data: Path, tmp_path: Path, capsys) -> None:
    """A spot recording with symbols configured for USD-M is a configuration error naming symbols[0].venue."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[symbols]]\nsymbol = "NKNUSDT"\nvenue = "binance_usdm"\n')
    code = replay_main(["whatif", "--hbt", str(spot_hbt(shared_data, tmp_path)), "--config", str(cfg)])
    assert code == 2 and "symbols[0].venue" in capsys.readouterr().err


def test_venue_set_on_the_command_line_is_checked_too(shared_data: Path, tmp_path: Path, capsys) -> None:
    """--set symbols.*.venue contradicting the recording is exit 2 naming the option."""
    code = replay_main(["whatif", "--hbt", str(shared_data / USDM), "--set", "symbols.*.venue=binance_spot"])
    assert code == 2 and "symbols[0].venue" in capsys.readouterr().err


def test_coinm_is_refused_naming_the_market(tmp_path: Path, capsys) -> None:
    """A Binance COIN-M recording is exit 2 naming COIN-M, never read as USD-M."""
    with pytest.raises(UnsupportedRecording, match="COIN-M"):
        detect_recording(coinm_hbt(tmp_path))
    code = replay_main(["whatif", "--hbt", str(coinm_hbt(tmp_path))])
    assert code == 2 and "COIN-M" in capsys.readouterr().err


def unreadable(shared_data: Path, tmp_path: Path, kind: str) -> Path:
    if kind == "zip":
        path = tmp_path / "usdm_btcusdt_20240808.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.write(shared_data / USDM, "usdm_btcusdt_20240808.gz")
        return path
    if kind == "plain":
        path = tmp_path / "usdm_btcusdt_20240808.txt"
        path.write_bytes(gzip.decompress((shared_data / USDM).read_bytes())[:100_000])
        return path
    if kind == "truncated":
        path = tmp_path / "usdm_btcusdt_20240808.gz"
        path.write_bytes((shared_data / USDM).read_bytes()[:20])
        return path
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["zip", "plain", "truncated"])
def test_unreadable_files_are_exit_2_naming_the_file(shared_data: Path, tmp_path: Path, capsys, kind: str) -> None:
    """A zip, an uncompressed or a broken file is exit 2 naming the file and what is supported, no traceback."""
    path = unreadable(shared_data, tmp_path, kind)
    code = replay_main(["whatif", "--hbt", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "supported" in err


def test_truncated_tail_mid_replay_is_exit_2(shared_data: Path, tmp_path: Path, capsys) -> None:
    """A recording cut short after its readable head is exit 2 naming the file when the replay reaches the cut."""
    path = tmp_path / "usdm_btcusdt_20240808.gz"
    path.write_bytes((shared_data / USDM).read_bytes()[:400_000])
    code = replay_main(["whatif", "--hbt", str(path)])
    assert code == 2 and str(path) in capsys.readouterr().err


def test_zip_read_as_gzip_elsewhere_is_named(shared_data: Path, tmp_path: Path) -> None:
    """The detector says what a zip file is rather than raising gzip.BadGzipFile."""
    with pytest.raises(UnsupportedRecording, match="zip archive"):
        detect_recording(unreadable(shared_data, tmp_path, "zip"))


def start_cluster(tmp_path: Path, toml: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "rec.toml"
    cfg.write_text(toml)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBOR__")}
    return subprocess.run([sys.executable, "-m", "arbor.actors.cluster.main", "--config", str(cfg), "--duration", "2",
                           "--quiet", "--var-dir", str(tmp_path / "var")], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=env, timeout=60)


def test_start_cluster_refuses_coinm_naming_the_market(tmp_path: Path) -> None:
    """[market] source = "recorded" on a COIN-M recording is exit 2 naming the market and the option."""
    proc = start_cluster(tmp_path, f'[market]\nsource = "recorded"\nrecorded_files = ["{coinm_hbt(tmp_path)}"]\n')
    assert proc.returncode == 2
    assert "market.recorded_files" in proc.stderr and "COIN-M" in proc.stderr and "Traceback" not in proc.stderr


def test_start_cluster_refuses_a_venue_the_recording_contradicts(shared_data: Path, tmp_path: Path) -> None:
    """A symbol configured for spot on a USD-M recording is exit 2 naming symbols[0].venue."""
    proc = start_cluster(tmp_path, f'[market]\nsource = "recorded"\nrecorded_files = ["{shared_data / USDM}"]\n'
                                   '[[symbols]]\nsymbol = "BTCUSDT"\nvenue = "binance_spot"\n')
    assert proc.returncode == 2 and "symbols[0].venue" in proc.stderr


def test_start_cluster_plays_a_spot_recording_with_no_venue_configured(shared_data: Path, tmp_path: Path) -> None:
    """[market] source = "recorded" on the spot CF3 sample runs as spot: the four pairs, exit 0."""
    proc = start_cluster(tmp_path, f'[market]\nsource = "recorded"\npaced = false\n'
                                   f'recorded_files = ["{shared_data / SPOT_CF3}"]\n')
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_worker_reads_only_the_recordings_of_its_own_symbols(shared_data: Path) -> None:
    """Each multi-process Worker plays its own symbols: files that carry only other symbols are not
    opened (one unreadable file stops only the Worker that plays it); a multi-symbol file is kept."""
    btc, eth = (shared_data / "binance_usdm" / f"usdm_{s}_20240808.gz" for s in ("btcusdt", "ethusdt"))
    multi = shared_data / USDM_CF3
    assert recordings_of([btc, eth], {"ETHUSDT"}) == [eth]
    assert recordings_of([btc, eth], {"BTCUSDT", "ETHUSDT"}) == [btc, eth]
    assert recordings_of([btc, eth], {"SOLUSDT"}) == []
    carried = detect_recording(multi).symbols
    assert recordings_of([btc, multi], {carried[-1]}) == [multi]
