"""`instore config nats`: the store's leaf config and HQ's, checked by the REAL nats-server (-t)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firmware_config import tls
from firmware_config.nats import CUSTOMERS_BYTES, HQ_USER, generate, render_hq_conf, store_bytes, store_user
from firmware_config.store import Chain
from firmware_config.validate import ConfigError, validate_text
from instore.cli import app
from instore.hq import load_config
from tests.chain_env import nats_server_bin
from tests.conftest import BOUTIQUE

CHAIN = '\n[chain]\nhq_url = "tls://hq.example.com:7422"\nhq_cafile = "hq-ca.pem"\nevents_per_s = 4\n'


def _store_text(store_id: str = "boutique", chain: str = CHAIN) -> str:
    return BOUTIQUE.read_text(encoding="utf-8").replace('id = "boutique"', f'id = "{store_id}"', 1) + chain


def _write_store(tmp_path: Path, store_id: str, chain: str = CHAIN) -> Path:
    path = tmp_path / f"{store_id}.toml"
    path.write_text(_store_text(store_id, chain), encoding="utf-8")
    return path


def test_store_bytes_cover_the_outage_at_the_peak_rate() -> None:
    chain = Chain(hq_url="tls://hq:7422", events_per_s=10, event_bytes=1000, outage_h=72)
    payload = 10 * 1000 * 72 * 3600
    assert payload < store_bytes(chain) <= 2 * payload
    assert store_bytes(chain.model_copy(update={"outage_h": 144})) == pytest.approx(2 * store_bytes(chain), rel=1e-6)


def test_bad_chain_section_names_file_line_and_key() -> None:
    text = _store_text(chain='\n[chain]\nhq_url = "tls://hq:7422"\noutage_h = 12\n')
    with pytest.raises(ConfigError) as err:
        validate_text(text, "shop.toml")
    line = text.splitlines().index("outage_h = 12") + 1
    assert f"shop.toml:{line}: chain.outage_h:" in str(err.value)


def test_leaf_config_is_a_jetstream_domain_with_synced_sized_storage_and_a_tls_leaf(tmp_path: Path) -> None:
    tls.generate("hq", tmp_path / "tls", ["hq.example.com"])
    store = validate_text(_store_text("a", CHAIN.replace("hq-ca.pem", "tls/ca.crt")), "a.toml")
    files = generate([(store, tmp_path / "a.toml")], tmp_path / "out")
    conf = files.leaf_confs["a"].read_text(encoding="utf-8")
    password = tomllib.loads(files.credentials.read_text(encoding="utf-8"))[store_user("a")]
    assert 'domain: "a"' in conf
    assert "sync_interval: always" in conf
    assert store.chain is not None and f"max_file_store: {store_bytes(store.chain) + CUSTOMERS_BYTES}" in conf
    assert f'url: "tls://store-a:{password}@hq.example.com:7422"' in conf
    assert f'ca_file: "{tmp_path / "tls" / "ca.crt"}"' in conf
    assert files.leaf_confs["a"].stat().st_mode & 0o777 == 0o640
    assert files.credentials.stat().st_mode & 0o777 == 0o600
    subprocess.run([nats_server_bin(), "-t", "-c", str(files.leaf_confs["a"])], check=True, capture_output=True)


def test_hq_config_grants_each_store_only_its_own_subjects(tmp_path: Path) -> None:
    conf = render_hq_conf(["a", "b"], {HQ_USER: "h", "store-a": "pa", "store-b": "pb"})
    assert "_INBOX" not in conf
    assert "no_advertise: true" in conf
    store_a = next(line for line in conf.splitlines() if "store-a" in line)
    block = conf[conf.index(store_a):].split("}}", 1)[0]
    assert '"chain.a.>"' in block and '"_HQ.a.>"' in block and '"$JS.a.API.>"' in block
    assert ".b." not in block and "$JS.b." not in block
    path = tmp_path / "hq.conf"
    path.write_text(conf, encoding="utf-8")
    subprocess.run([nats_server_bin(), "-t", "-c", str(path)], check=True, capture_output=True)


def test_cli_writes_every_store_and_hq_and_keeps_passwords_on_rerun(tmp_path: Path) -> None:
    a, b = _write_store(tmp_path, "a"), _write_store(tmp_path, "b")
    out = tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(app, ["config", "nats", str(a), str(b), "--out", str(out), "--hq"])
    assert first.exit_code == 0, first.output
    assert {p.name for p in out.iterdir()} == {"nats-a.conf", "nats-b.conf", "nats-hq.conf", "chain-credentials.toml"}
    creds = (out / "chain-credentials.toml").read_text(encoding="utf-8")
    again = runner.invoke(app, ["config", "nats", str(a), str(b), "--out", str(out), "--hq"])
    assert again.exit_code == 0
    assert (out / "chain-credentials.toml").read_text(encoding="utf-8") == creds


def test_cli_refuses_a_store_without_chain_section(tmp_path: Path) -> None:
    lone = tmp_path / "lone.toml"
    lone.write_text(BOUTIQUE.read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "nats", str(lone), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"{lone}: chain: missing" in result.output


def test_hq_config_problems_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "hq.toml"
    path.write_text('password_file = "pw"\npostgres = "postgresql://x"\nstores = ["a", "B!"]\nstore = 1\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert f"{path}:3: stores[1]:" in text
    assert f"{path}:4: store:" in text


def test_instore_hq_refuses_a_bad_config_with_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "hq.toml"
    path.write_text('password_file = "pw"\npostgres = "postgresql://x"\nstores = []\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["hq", "--config", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3: stores:" in result.output
