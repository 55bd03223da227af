"""Proxies and CA bundles come from the operator's environment; ~/.netrc never does."""

from syncd.api.http import make_session, proxies_for


def test_proxy_variables_apply_except_to_loopback_and_no_proxy(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert (
        proxies_for("https://api.shutterstock.com/v2")["https"] == "http://proxy.corp.example:3128"
    )
    assert proxies_for("http://127.0.0.1:8080/v2") == {}
    monkeypatch.setenv("NO_PROXY", "shutterstock.com")
    assert proxies_for("https://api.shutterstock.com/v2") == {}


def test_ca_bundle_from_the_environment_and_no_netrc(monkeypatch, tmp_path):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "corp.pem"))
    session = make_session(4)
    assert session.verify == str(tmp_path / "corp.pem")
    assert session.trust_env is False
