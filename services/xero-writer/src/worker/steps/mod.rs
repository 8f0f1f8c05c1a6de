//! The steps of converging an order, in the order `process` runs them: contacts, payment terms,
//! invoices (create, adopt, update), restore of archived contacts, credit-and-reissue in a
//! locked period, voids, payments and refunds.

mod contacts;
mod invoices;
pub(crate) mod payments;
mod refunds;
mod reissue;
mod restore;
mod terms;
mod voids;

use crate::compose::InvoiceDoc;
use crate::ledger;
use crate::org::OrgSettings;

/// The date the order's invoice carries in Xero (as written; older entries: as it would be).
pub(crate) fn written_date(e: &ledger::Entry, doc: &InvoiceDoc) -> String {
    if e.date.is_empty() {
        doc.doc.date.clone()
    } else {
        e.date.clone()
    }
}

/// The org's lock date, when the invoice is dated on or before it.
pub(crate) fn locked_on(
    e: &ledger::Entry,
    doc: &InvoiceDoc,
    org: &OrgSettings,
) -> Option<chrono::NaiveDate> {
    let lock = org.lock_date?;
    let date = chrono::NaiveDate::parse_from_str(&written_date(e, doc), "%Y-%m-%d").ok()?;
    (date <= lock).then_some(lock)
}

/// Why a payment (or allocation) of an order waits: its invoice is a draft.
pub(crate) fn draft_wait(order: &str, what: &str, invoice: &str) -> String {
    format!(
        "order {order}: {what} waits for approval: invoice {invoice} is a DRAFT in Xero (WRITER_INVOICE_STATUS=draft) and Xero records payments only on approved invoices; approve the invoice in Xero, then replay this event"
    )
}
