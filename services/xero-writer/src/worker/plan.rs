//! What each order in a batch needs: skip, converge, void, credit-and-reissue or review;
//! and the invoices of cancelled orders an unconfirmed attempt may have left in Xero.

use crate::compose;
use crate::config::LockedPeriod;
use crate::contacts;
use crate::metrics_names as m;
use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::group::Group;
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{OrderStatus, ReasonClass};
use ledgerline_mapping::Effective;
use reqwest::Method;
use rust_decimal::Decimal;

impl TenantWorker {
    /// Decides, per order, what (if anything) must be written.
    pub(crate) async fn plan(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        let cfg = &self.shared.config;
        for g in groups.iter_mut() {
            if !g.live() {
                continue;
            }
            let Some((ev, idx)) = g.order.clone() else {
                continue;
            };
            let order = ev.order.clone().unwrap_or_default();
            let e = &g.led.entry;
            let rev = g.revision();
            let seen = order.version < e.version
                || (order.version == e.version && rev == e.mapping_revision);
            if seen && e.payments_in_flight.is_empty() {
                metrics::counter!(m::SKIPPED, "tenant" => self.tenant().to_owned()).increment(1);
                continue;
            }
            if let Some(start) = cfg.start_date
                && compose::day_in(org.timezone, &order.created_at).is_some_and(|d| d < start)
                && g.led.entry.invoice_id.is_empty()
            {
                // Before go-live: an earlier integration (or the bookkeeper) owns it.
                g.led.entry.before_start = true;
                metrics::counter!(m::BEFORE_START, "tenant" => self.tenant().to_owned())
                    .increment(1);
                continue;
            }
            g.converge = true;
            let cancelled = order.status == OrderStatus::Cancelled as i32;
            if cancelled {
                if e.invoice_id.is_empty() || e.voided {
                    continue;
                }
                if e.credited() > Decimal::ZERO
                    || (e.paid() > Decimal::ZERO && !cfg.void_removes_payments)
                {
                    let error = if e.credited() > Decimal::ZERO {
                        format!(
                            "order {} was cancelled but its invoice {} has credit notes allocated; remove the allocations in Xero, then replay",
                            order.number, e.invoice_number
                        )
                    } else {
                        format!(
                            "order {} was cancelled but its invoice {} has payments; remove them in Xero, then replay (or set WRITER_VOID_REMOVES_PAYMENTS)",
                            order.number, e.invoice_number
                        )
                    };
                    self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                        .await;
                    continue;
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
                    if cfg.locked_period == LockedPeriod::Review || e.paid() > Decimal::ZERO {
                        let error = format!(
                            "order {} was cancelled but its invoice {} is dated {date}, on or before the organisation's lock date {lock}, where Xero cannot void it; a person decides (credit note, or unlock the period and replay){}",
                            order.number,
                            e.invoice_number,
                            if e.paid() > Decimal::ZERO {
                                "; it also has payments"
                            } else {
                                ", or set WRITER_LOCKED_PERIOD=credit-and-reissue"
                            }
                        );
                        self.review(g, &msgs[idx], ReasonClass::Policy, &error, vec![])
                            .await;
                    } else {
                        g.reissue = true;
                        g.credit_only = true;
                    }
                    continue;
                }
                g.remove_payments = e.paid() > Decimal::ZERO;
                g.void = true;
                continue;
            }
            if e.contact_id.is_empty() {
                g.contact = Some(contacts::spec(&order, &mapping.mapping));
            }
        }
    }

    /// A cancelled order the ledger has no invoice for may still have one: an attempt Xero
    /// applied whose answer (or ledger write) was lost to a crash, with the cancellation then
    /// processed before the redelivered create. Such an invoice is looked up by number and
    /// voided like any other; one call per batch that has such orders.
    pub(crate) async fn find_unconfirmed_invoices(
        &self,
        groups: &mut [Group],
        msgs: &[Message],
        mapping: &Effective,
    ) {
        let todo: Vec<(usize, String)> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.live() && g.converge && !g.void && !g.reissue)
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
            let list = match self
                .client
                .call(
                    Method::GET,
                    "/Invoices",
                    &[("InvoiceNumbers", numbers.join(",")), ("page", "1".into())],
                    None,
                )
                .await
            {
                Ok(v) => v.invoices,
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
                    g.void = true;
                } else {
                    let idx = g.order.as_ref().map_or(g.msgs[0], |(_, i)| *i);
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
