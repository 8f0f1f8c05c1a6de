//! What each order in a batch needs, decided without I/O: [`plan`] from the ledger entry, the
//! order and the organisation's settings, then [`revise`] once the invoice is built; and the
//! invoices of cancelled orders an unconfirmed attempt may have left in Xero.

use crate::compose::{self, InvoiceDoc};
use crate::config::{Config, LockedPeriod};
use crate::contacts;
use crate::ledger::Entry;
use crate::metrics_names as m;
use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::steps::{locked_on, written_date};
use crate::worker::work::OrderWork;
use crate::worker::write::InvoicesBy;
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{Order, OrderStatus, ReasonClass};
use ledgerline_mapping::Effective;
use rust_decimal::Decimal;

/// What an order's snapshot needs. Each variant is one course of action, so no combination
/// of them can be asked for at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing to write.
    Skip(Skip),
    /// Make Xero match the order: its contact, its invoice as [`Write`] says, its payments.
    Converge(Write),
    /// Cancelled, with no invoice to void (none written, or voided already); a lost attempt's
    /// invoice may still be found by number (then [`Plan::Void`]).
    Cancelled,
    /// Cancelled: void the invoice (a draft is deleted), deleting its payments first when
    /// `remove_payments`.
    Void {
        /// Its payments are deleted before the void (`WRITER_VOID_REMOVES_PAYMENTS`).
        remove_payments: bool,
    },
    /// The invoice lies in a locked period: credit it in full, and unless `credit_only` (the
    /// order was cancelled) issue a new one after the lock date.
    Reissue {
        /// Cancelled: the credit note is all.
        credit_only: bool,
    },
    /// A person decides (a POLICY review entry with this text).
    Review(String),
}

/// Why nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// This version (and mapping revision) was written already.
    Seen,
    /// Created before the go-live date, with no invoice of ours: another system owns it.
    BeforeStart,
    /// The batch holds only refunds of the order, not a snapshot of it.
    NoSnapshot,
}

/// What happens to the invoice of an order that converges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Not known until the document is built ([`revise`]).
    Undecided,
    /// No invoice yet: create it.
    Create,
    /// Its content changed: update it.
    Update,
    /// Unchanged, or a change that is not made (a paid invoice, by policy or after review).
    Keep,
}

impl Plan {
    /// True while the order's snapshot is being made to hold in Xero (its version is recorded
    /// once the batch succeeds): every plan but a skip or a review.
    pub(crate) fn converges(&self) -> bool {
        !matches!(self, Self::Skip(_) | Self::Review(_))
    }

    /// True when the invoice is to be voided.
    pub(crate) fn voids(&self) -> bool {
        matches!(self, Self::Void { .. })
    }
}

/// The settings [`plan`] and [`revise`] decide by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// `WRITER_START_DATE`.
    pub(crate) start_date: Option<chrono::NaiveDate>,
    /// `WRITER_VOID_REMOVES_PAYMENTS`.
    pub(crate) void_removes_payments: bool,
    /// `WRITER_LOCKED_PERIOD`.
    pub(crate) locked_period: LockedPeriod,
    /// `WRITER_PAID_CHANGE=review`.
    pub(crate) paid_change_review: bool,
}

impl Policy {
    /// The writer's configured policy.
    pub(crate) fn of(cfg: &Config) -> Self {
        Self {
            start_date: cfg.start_date,
            void_removes_payments: cfg.void_removes_payments,
            locked_period: cfg.locked_period,
            paid_change_review: cfg.paid_change_review,
        }
    }
}

/// What `order` (with mapping revision `revision`) needs, given what the ledger says was
/// written for it.
pub(crate) fn plan(
    e: &Entry,
    order: &Order,
    revision: &str,
    org: &OrgSettings,
    policy: &Policy,
) -> Plan {
    let seen =
        order.version < e.version || (order.version == e.version && revision == e.mapping_revision);
    if seen && e.payments_in_flight.is_empty() {
        return Plan::Skip(Skip::Seen);
    }
    if let Some(start) = policy.start_date
        && compose::day_in(org.timezone, &order.created_at).is_some_and(|d| d < start)
        && e.invoice_id.is_empty()
    {
        // Before go-live: an earlier integration (or the bookkeeper) owns it.
        return Plan::Skip(Skip::BeforeStart);
    }
    if order.status != OrderStatus::Cancelled as i32 {
        return Plan::Converge(Write::Undecided);
    }
    if e.invoice_id.is_empty() || e.voided {
        return Plan::Cancelled;
    }
    if e.credited() > Decimal::ZERO {
        return Plan::Review(format!(
            "order {} was cancelled but its invoice {} has credit notes allocated; remove the allocations in Xero, then replay",
            order.number, e.invoice_number
        ));
    }
    if e.paid() > Decimal::ZERO && !policy.void_removes_payments {
        return Plan::Review(format!(
            "order {} was cancelled but its invoice {} has payments; remove them in Xero, then replay (or set WRITER_VOID_REMOVES_PAYMENTS)",
            order.number, e.invoice_number
        ));
    }
    let written = if e.date.is_empty() {
        compose::day_in(org.timezone, &order.created_at)
    } else {
        chrono::NaiveDate::parse_from_str(&e.date, "%Y-%m-%d").ok()
    };
    if let (Some(lock), Some(date)) = (org.lock_date, written)
        && date <= lock
        && !e.is_draft()
    {
        // Xero will not void a document in a closed period.
        if policy.locked_period == LockedPeriod::Review || e.paid() > Decimal::ZERO {
            return Plan::Review(format!(
                "order {} was cancelled but its invoice {} is dated {date}, on or before the organisation's lock date {lock}, where Xero cannot void it; a person decides (credit note, or unlock the period and replay){}",
                order.number,
                e.invoice_number,
                if e.paid() > Decimal::ZERO {
                    "; it also has payments"
                } else {
                    ", or set WRITER_LOCKED_PERIOD=credit-and-reissue"
                }
            ));
        }
        return Plan::Reissue { credit_only: true };
    }
    Plan::Void {
        remove_payments: e.paid() > Decimal::ZERO,
    }
}

/// The plan of a converging order once its invoice `doc` is built: create it, update it,
/// keep it, credit and reissue it (a locked period), or review the change.
pub(crate) fn revise(
    e: &Entry,
    order: &Order,
    doc: &InvoiceDoc,
    org: &OrgSettings,
    policy: &Policy,
) -> Plan {
    if e.invoice_id.is_empty() {
        return Plan::Converge(Write::Create);
    }
    if e.content_hash == doc.hash {
        return Plan::Converge(Write::Keep);
    }
    if e.paid() > Decimal::ZERO || e.credited() > Decimal::ZERO {
        if policy.paid_change_review && e.reviewed_version < order.version {
            return Plan::Review(format!(
                "order {} changed (version {}) after its invoice {} was paid; a person decides (credit note and re-issue, or ignore)",
                order.number, order.version, e.invoice_number
            ));
        }
        // Ignored (by policy or already reviewed): payments still converge.
        return Plan::Converge(Write::Keep);
    }
    if let Some(lock) = locked_on(e, doc, org) {
        // Xero refuses any change there: decided here, no call spent.
        return match policy.locked_period {
            LockedPeriod::Review => Plan::Review(format!(
                "order {} changed (version {}) but its invoice {} is dated {}, on or before the organisation's lock date {lock}, and Xero refuses changes there; a person decides (credit note and re-issue, or unlock the period and replay), or set WRITER_LOCKED_PERIOD=credit-and-reissue",
                order.number,
                order.version,
                e.invoice_number,
                written_date(e, doc)
            )),
            LockedPeriod::CreditAndReissue => Plan::Reissue { credit_only: false },
        };
    }
    Plan::Converge(Write::Update)
}

impl TenantWorker {
    /// Decides, per order, what (if anything) must be written ([`plan`]), and sends the orders
    /// a person must decide on to review.
    pub(crate) async fn plan(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        let policy = Policy::of(&self.shared.config);
        for g in groups.iter_mut() {
            if !g.live() {
                continue;
            }
            let Some((ev, idx)) = g.order.clone() else {
                continue;
            };
            let order = ev.order.clone().unwrap_or_default();
            g.plan = plan(&g.led.entry, &order, &g.revision(), org, &policy);
            match &g.plan {
                Plan::Skip(Skip::BeforeStart) => {
                    g.led.entry.before_start = true;
                    metrics::counter!(m::BEFORE_START, "tenant" => self.tenant().to_owned())
                        .increment(1);
                }
                Plan::Skip(_) => {
                    metrics::counter!(m::SKIPPED, "tenant" => self.tenant().to_owned())
                        .increment(1);
                }
                Plan::Review(error) => {
                    let error = error.clone();
                    self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                        .await;
                }
                Plan::Converge(_) if g.led.entry.contact_id.is_empty() => {
                    g.contact = Some(contacts::spec(&order, &mapping.mapping));
                }
                _ => {}
            }
        }
    }

    /// A cancelled order the ledger has no invoice for may still have one: an attempt Xero
    /// applied whose answer (or ledger write) was lost to a crash, with the cancellation then
    /// processed before the redelivered create. Such an invoice is looked up by number and
    /// voided like any other; one call per batch that has such orders.
    pub(crate) async fn find_unconfirmed_invoices(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        mapping: &Effective,
    ) {
        let todo: Vec<(usize, String)> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.live() && g.plan == Plan::Cancelled)
            .filter(|(_, g)| g.led.entry.invoice_id.is_empty() && !g.led.entry.voided)
            .filter_map(|(i, g)| {
                let order = g.order.as_ref().and_then(|(e, _)| e.order.as_ref())?;
                (order.status == OrderStatus::Cancelled as i32).then(|| {
                    (
                        i,
                        mapping.mapping.invoice_number(&compose::values(order, "")),
                    )
                })
            })
            .collect();
        for chunk in todo.chunks(40) {
            let numbers: Vec<&str> = chunk.iter().map(|(_, n)| n.as_str()).collect();
            let list = match self.read_invoices(InvoicesBy::Number, &numbers).await {
                Ok(v) => v,
                Err(e) => {
                    for (i, _) in chunk {
                        self.call_failed(&mut groups[*i], msgs, &e).await;
                    }
                    continue;
                }
            };
            for (i, number) in chunk {
                let g = &mut groups[*i];
                let Some(found) = list.iter().find(|v| {
                    v.invoice_number.eq_ignore_ascii_case(number)
                        && matches!(v.status.as_str(), "DRAFT" | "SUBMITTED" | "AUTHORISED")
                }) else {
                    continue;
                };
                let (Some(total), Some(paid), Some(credited)) = (
                    g.amount(found.total, "Total"),
                    g.amount(found.amount_paid, "AmountPaid"),
                    g.amount(found.amount_credited, "AmountCredited"),
                ) else {
                    continue;
                };
                let e = &mut g.led.entry;
                e.invoice_id = found.invoice_id.clone();
                e.invoice_number = number.clone();
                e.status = found.status.clone();
                e.total = total;
                if paid.is_zero() && credited.is_zero() {
                    tracing::info!(key = %g.key, invoice = %number, "Cancelled order's invoice from an unconfirmed attempt found; voiding it.");
                    g.plan = Plan::Void {
                        remove_payments: false,
                    };
                } else {
                    let idx = g.order_msg();
                    let error = format!(
                        "order was cancelled and its invoice {number} (not in the ledger: an unconfirmed attempt) has payments or credit in Xero; remove them in Xero, then replay"
                    );
                    self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                        .await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CreditEntry, PaymentEntry};
    use ledgerline_xero_client::model::send;

    fn day(s: &str) -> chrono::NaiveDate {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn org(lock: Option<&str>) -> OrgSettings {
        OrgSettings {
            accounts: vec![],
            tax_rates: vec![],
            tracking: vec![],
            currencies: vec!["NZD".into()],
            base_currency: "NZD".into(),
            timezone: chrono_tz::Pacific::Auckland,
            sales_terms: None,
            lock_date: lock.map(day),
            fetched: std::time::Instant::now(),
        }
    }

    fn policy() -> Policy {
        Policy {
            start_date: None,
            void_removes_payments: false,
            locked_period: LockedPeriod::Review,
            paid_change_review: false,
        }
    }

    fn order(version: u64, cancelled: bool) -> Order {
        Order {
            id: "o1".into(),
            number: "SO-1".into(),
            version,
            created_at: "2026-11-20T10:00:00+13:00".into(),
            status: if cancelled {
                OrderStatus::Cancelled as i32
            } else {
                OrderStatus::Confirmed as i32
            },
            ..Default::default()
        }
    }

    /// An entry with an AUTHORISED invoice of order version 1, dated 2026-11-20.
    fn written() -> Entry {
        Entry {
            contact_id: "c".into(),
            invoice_id: "i".into(),
            invoice_number: "INV-1".into(),
            content_hash: "h1".into(),
            status: "AUTHORISED".into(),
            date: "2026-11-20".into(),
            total: Decimal::new(2875, 2),
            version: 1,
            mapping_revision: "r".into(),
            ..Default::default()
        }
    }

    fn paid(mut e: Entry) -> Entry {
        e.payments.insert(
            "p1".into(),
            PaymentEntry {
                payment_id: "x".into(),
                amount: Decimal::new(1000, 2),
            },
        );
        e
    }

    fn credited(mut e: Entry) -> Entry {
        e.credit_notes.insert(
            "r1".into(),
            CreditEntry {
                allocated: Decimal::new(500, 2),
                ..Default::default()
            },
        );
        e
    }

    fn doc(hash: &str) -> InvoiceDoc {
        InvoiceDoc {
            doc: send::Document {
                kind: "ACCREC".into(),
                invoice_id: None,
                contact: send::ContactRef {
                    contact_id: "c".into(),
                },
                invoice_number: Some("INV-1".into()),
                credit_note_number: None,
                reference: String::new(),
                date: "2026-11-20".into(),
                due_date: None,
                line_amount_types: "Exclusive".into(),
                status: "AUTHORISED".into(),
                line_items: vec![],
                currency_code: None,
            },
            number: "INV-1".into(),
            hash: hash.into(),
            unitdp4: false,
            total: Decimal::new(2875, 2),
            dropped_tracking: vec![],
            rounding: Decimal::ZERO,
        }
    }

    fn is_review(p: &Plan) -> bool {
        matches!(p, Plan::Review(_))
    }

    #[test]
    fn every_case_the_flags_expressed_has_one_plan() {
        let p = policy();
        let removes = Policy {
            void_removes_payments: true,
            ..p
        };
        let reissue = Policy {
            locked_period: LockedPeriod::CreditAndReissue,
            ..p
        };
        let go_live = Policy {
            start_date: Some(day("2026-12-01")),
            ..p
        };
        let draft = Entry {
            status: "DRAFT".into(),
            ..written()
        };
        let in_flight = Entry {
            payments_in_flight: vec!["p2".into()],
            ..written()
        };
        let voided = Entry {
            voided: true,
            ..written()
        };
        let none = Entry::default();
        let w = written();
        let paid_w = paid(written());
        let open = org(None);
        let locked = org(Some("2026-11-30"));
        // (what, entry, order, revision, org, policy, plan)
        let cases: Vec<(&str, &Entry, Order, &str, &OrgSettings, &Policy, Plan)> = vec![
            (
                "new order",
                &none,
                order(1, false),
                "r",
                &open,
                &p,
                Plan::Converge(Write::Undecided),
            ),
            (
                "same version and revision",
                &w,
                order(1, false),
                "r",
                &open,
                &p,
                Plan::Skip(Skip::Seen),
            ),
            (
                "older version",
                &w,
                order(0, false),
                "r2",
                &open,
                &p,
                Plan::Skip(Skip::Seen),
            ),
            (
                "new mapping revision",
                &w,
                order(1, false),
                "r2",
                &open,
                &p,
                Plan::Converge(Write::Undecided),
            ),
            (
                "newer version",
                &w,
                order(2, false),
                "r",
                &open,
                &p,
                Plan::Converge(Write::Undecided),
            ),
            (
                "seen, a payment unsure",
                &in_flight,
                order(1, false),
                "r",
                &open,
                &p,
                Plan::Converge(Write::Undecided),
            ),
            (
                "before go-live",
                &none,
                order(1, false),
                "r",
                &open,
                &go_live,
                Plan::Skip(Skip::BeforeStart),
            ),
            (
                "before go-live, invoiced by us",
                &w,
                order(2, false),
                "r",
                &open,
                &go_live,
                Plan::Converge(Write::Undecided),
            ),
            (
                "cancelled, no invoice",
                &none,
                order(1, true),
                "r",
                &open,
                &p,
                Plan::Cancelled,
            ),
            (
                "cancelled, voided",
                &voided,
                order(2, true),
                "r",
                &open,
                &p,
                Plan::Cancelled,
            ),
            (
                "cancelled, unpaid",
                &w,
                order(2, true),
                "r",
                &open,
                &p,
                Plan::Void {
                    remove_payments: false,
                },
            ),
            (
                "cancelled, paid, policy removes",
                &paid_w,
                order(2, true),
                "r",
                &open,
                &removes,
                Plan::Void {
                    remove_payments: true,
                },
            ),
            (
                "cancelled, locked, draft",
                &draft,
                order(2, true),
                "r",
                &locked,
                &p,
                Plan::Void {
                    remove_payments: false,
                },
            ),
            (
                "cancelled, locked, credit-and-reissue",
                &w,
                order(2, true),
                "r",
                &locked,
                &reissue,
                Plan::Reissue { credit_only: true },
            ),
        ];
        for (what, e, o, rev, org, policy, want) in &cases {
            assert_eq!(&plan(e, o, rev, org, policy), want, "{what}");
        }
        let both = Policy {
            void_removes_payments: true,
            ..reissue
        };
        // A person decides.
        let reviews: Vec<(&str, Entry, Order, &OrgSettings, &Policy)> = vec![
            (
                "cancelled, paid",
                paid(written()),
                order(2, true),
                &open,
                &p,
            ),
            (
                "cancelled, credited",
                credited(written()),
                order(2, true),
                &open,
                &removes,
            ),
            (
                "cancelled, locked, review policy",
                written(),
                order(2, true),
                &locked,
                &p,
            ),
            (
                "cancelled, locked, paid, credit-and-reissue",
                paid(written()),
                order(2, true),
                &locked,
                &both,
            ),
        ];
        for (what, e, o, org, policy) in &reviews {
            assert!(is_review(&plan(e, o, "r", org, policy)), "{what}");
        }
    }

    #[test]
    fn a_built_invoice_is_created_updated_kept_reissued_or_reviewed() {
        let p = policy();
        let open = org(None);
        let locked = org(Some("2026-11-30"));
        let reissue = Policy {
            locked_period: LockedPeriod::CreditAndReissue,
            ..p
        };
        let review_paid = Policy {
            paid_change_review: true,
            ..p
        };
        let reviewed = Entry {
            reviewed_version: 2,
            ..paid(written())
        };
        let o = order(2, false);
        let cases: Vec<(&str, Entry, &str, &OrgSettings, &Policy, Plan)> = vec![
            (
                "no invoice",
                Entry::default(),
                "h2",
                &open,
                &p,
                Plan::Converge(Write::Create),
            ),
            (
                "unchanged",
                written(),
                "h1",
                &open,
                &p,
                Plan::Converge(Write::Keep),
            ),
            (
                "unchanged in a locked period",
                written(),
                "h1",
                &locked,
                &p,
                Plan::Converge(Write::Keep),
            ),
            (
                "changed",
                written(),
                "h2",
                &open,
                &p,
                Plan::Converge(Write::Update),
            ),
            (
                "changed after payment, ignored",
                paid(written()),
                "h2",
                &open,
                &p,
                Plan::Converge(Write::Keep),
            ),
            (
                "changed after credit, ignored",
                credited(written()),
                "h2",
                &locked,
                &p,
                Plan::Converge(Write::Keep),
            ),
            (
                "changed after payment, reviewed before",
                reviewed,
                "h2",
                &open,
                &review_paid,
                Plan::Converge(Write::Keep),
            ),
            (
                "changed in a locked period",
                written(),
                "h2",
                &locked,
                &reissue,
                Plan::Reissue { credit_only: false },
            ),
        ];
        for (what, e, hash, org, policy, want) in &cases {
            assert_eq!(&revise(e, &o, &doc(hash), org, policy), want, "{what}");
        }
        assert!(is_review(&revise(
            &paid(written()),
            &o,
            &doc("h2"),
            &open,
            &review_paid
        )));
        assert!(is_review(&revise(&written(), &o, &doc("h2"), &locked, &p)));
    }

    #[test]
    fn only_plans_that_write_converge() {
        assert!(!Plan::Skip(Skip::Seen).converges());
        assert!(!Plan::Skip(Skip::NoSnapshot).converges());
        assert!(!Plan::Review("x".into()).converges());
        for p in [
            Plan::Converge(Write::Keep),
            Plan::Cancelled,
            Plan::Void {
                remove_payments: true,
            },
            Plan::Reissue { credit_only: false },
        ] {
            assert!(p.converges(), "{p:?}");
        }
        assert!(
            Plan::Void {
                remove_payments: false
            }
            .voids()
        );
        assert!(!Plan::Reissue { credit_only: true }.voids());
    }
}
