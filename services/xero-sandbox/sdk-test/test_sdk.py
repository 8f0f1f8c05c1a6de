"""Xero's official Python SDK (xero-python) against a running xero-sandbox.

Only the SDK's URL settings are changed: the token URL (TokenApi's class attributes) and the
base_url of IdentityApi and AccountingApi. Set XERO_SANDBOX_URL to the sandbox's base URL.
"""

import datetime
import json
import os
import urllib.request
import sys
import traceback

from xero_python.accounting import (
    Account,
    AccountingApi,
    Contact,
    Contacts,
    Invoice,
    Invoices,
    LineAmountTypes,
    LineItem,
    Payment,
    Payments,
)
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.exceptions import AccountingBadRequestException, RateLimitException
from xero_python.identity import IdentityApi

BASE = os.environ.get("XERO_SANDBOX_URL", "http://127.0.0.1:5080").rstrip("/")
CLIENT_ID = os.environ.get("XERO_SANDBOX_CLIENT_ID", "ledgerline-sandbox")
CLIENT_SECRET = os.environ.get("XERO_SANDBOX_CLIENT_SECRET", "sandbox-secret")
ADMIN_TOKEN = os.environ.get("XERO_SANDBOX_ADMIN_TOKEN", "sandbox-admin")

# URL configuration: the identity host and the API host are one address here.
TokenApi.client_credentials_token_url = BASE + "/connect/token"
TokenApi.refresh_token_url = BASE + "/connect/token"
TokenApi.revoke_token_url = BASE + "/connect/revocation"

token_store = {}
api_client = ApiClient(
    Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)),
    pool_threads=1,
)


@api_client.oauth2_token_getter
def _get_token():
    return token_store


@api_client.oauth2_token_saver
def _save_token(token):
    token_store.update(token)


identity = IdentityApi(api_client, base_url=BASE)
accounting = AccountingApi(api_client, base_url=BASE + "/api.xro/2.0")
state = {}


def val(x):
    """Enum fields come back as enums or plain strings depending on the model."""
    return getattr(x, "value", x)


def test_client_credentials_token():
    token = api_client.get_client_credentials_token()
    assert token["access_token"], token
    assert token["expires_in"] == 1800, token


def test_list_connections():
    conns = identity.get_connections()
    assert len(conns) >= 1, conns
    assert conns[0].tenant_type == "ORGANISATION"
    state["tenant"] = str(conns[0].tenant_id)


def test_create_contact():
    name = "SDK Customer " + datetime.datetime.now(datetime.timezone.utc).strftime("%H%M%S%f")
    result = accounting.create_contacts(
        state["tenant"], contacts=Contacts(contacts=[Contact(name=name, email_address="sdk@example.com")])
    )
    contact = result.contacts[0]
    assert contact.name == name
    assert contact.contact_id
    state["contact"] = contact.contact_id


def test_create_invoice():
    invoice = Invoice(
        type="ACCREC",
        contact=Contact(contact_id=state["contact"]),
        date=datetime.date(2026, 11, 20),
        due_date=datetime.date(2026, 12, 20),
        line_amount_types=LineAmountTypes.EXCLUSIVE,
        status="AUTHORISED",
        line_items=[
            LineItem(description="Widget", quantity=2.0, unit_amount=21.74, account_code="200", tax_type="OUTPUT2")
        ],
    )
    result = accounting.create_invoices(state["tenant"], invoices=Invoices(invoices=[invoice]), summarize_errors=True)
    created = result.invoices[0]
    assert created.invoice_id
    assert val(created.status) == "AUTHORISED", created.status
    assert abs(float(created.total) - 50.00) < 0.001, created.total  # 43.48 + 6.52
    assert abs(float(created.total_tax) - 6.52) < 0.001, created.total_tax
    state["invoice"] = created.invoice_id
    state["total"] = created.total


def test_create_payment():
    payment = Payment(
        invoice=Invoice(invoice_id=state["invoice"]),
        account=Account(code="090"),
        date=datetime.date(2026, 11, 21),
        amount=state["total"],
        reference="SDK payment",
    )
    result = accounting.create_payments(state["tenant"], payments=Payments(payments=[payment]))
    assert result.payments[0].payment_id
    assert abs(float(result.payments[0].amount) - float(state["total"])) < 0.001


def test_invoice_reads_back_paid():
    result = accounting.get_invoice(state["tenant"], state["invoice"])
    invoice = result.invoices[0]
    assert val(invoice.status) == "PAID", invoice.status
    assert float(invoice.amount_due) == 0.0
    assert invoice.fully_paid_on_date is not None


def test_bad_account_code_is_a_validation_exception():
    invoice = Invoice(
        type="ACCREC",
        contact=Contact(contact_id=state["contact"]),
        status="AUTHORISED",
        line_items=[LineItem(description="Bad", quantity=1.0, unit_amount=10.0, account_code="999")],
    )
    try:
        accounting.create_invoices(state["tenant"], invoices=Invoices(invoices=[invoice]))
    except AccountingBadRequestException as e:
        assert e.error_data["Type"] == "ValidationException", e.error_data
        assert "Account code '999'" in e.reason, e.reason
        return
    raise AssertionError("expected a ValidationException")


def admin(path, body=None):
    req = urllib.request.Request(
        BASE + "/admin" + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + ADMIN_TOKEN, "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_minute_limit_429_with_retry_after_is_waited_out():
    # The SDK's HTTP layer (urllib3's default Retry) honours Retry-After on a 429 and retries up
    # to 3 times, so a minute-limit 429 is absorbed. At time scale 20 a minute lasts 3 s.
    admin("/settings", {"time_scale": 20.0})
    admin("/reset", {"documents": False})
    try:
        for _ in range(75):
            accounting.get_organisations(state["tenant"])
    finally:
        admin("/settings", {"time_scale": 1.0})
    log = admin("/requests?limit=2000")
    refused = [r for r in log if r["status"] == 429]
    assert refused, "the 61st call in a minute must get a 429"
    counters = admin("/counters")
    assert counters["throttled"] >= 1, counters


def test_rate_limit_exception_carries_retry_after():
    # When the 429s outlast the SDK's retries it raises RateLimitException.
    admin("/settings", {"force_429": 10, "force_429_problem": "minute"})
    try:
        accounting.get_organisations(state["tenant"])
    except RateLimitException as e:
        assert e.status == 429
        assert e.rate_limit == "minute", e.headers
        assert int(e.headers.get("Retry-After")) >= 1, e.headers
        return
    finally:
        admin("/settings", {"force_429": 0})
    raise AssertionError("expected RateLimitException")


def main():
    tests = [v for k, v in globals().items() if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for t in tests:
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
