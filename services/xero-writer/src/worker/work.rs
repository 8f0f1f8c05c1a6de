//! One order's work in a batch ([`OrderWork`]: its snapshot, refunds, messages, ledger entry,
//! plan and outcome), and decoding the messages it is made of.

use crate::compose::InvoiceDoc;
use crate::contacts::ContactSpec;
use crate::ledger::{self, Versioned};
use crate::worker::plan::Plan;
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{
    Order, OrderEvent, OrderStatus, ReasonClass, RefundEvent, XeroFact, XeroVerb,
};
use ledgerline_contract::{Schema, headers, subjects};
use ledgerline_xero_client::Need;
use prost::Message as _;
use rust_decimal::Decimal;

pub(crate) enum Decoded {
    Order(Box<OrderEvent>),
    Refund(Box<RefundEvent>),
}

#[derive(Debug, Clone)]
pub(crate) enum Fail {
    /// Try again later (nak).
    Transient(String),
    /// Dead-lettered; ack everything of the group.
    Dead,
}

pub(crate) struct OrderWork {
    pub(crate) key: String,
    pub(crate) store: String,
    pub(crate) order: Option<(OrderEvent, usize)>,
    pub(crate) refunds: Vec<(RefundEvent, usize)>,
    pub(crate) msgs: Vec<usize>,
    pub(crate) led: Versioned,
    /// The entry as last read or written (to skip writes that change nothing).
    pub(crate) saved: Option<ledger::Entry>,
    pub(crate) fail: Option<Fail>,
    pub(crate) contact: Option<ContactSpec>,
    pub(crate) inv: Option<InvoiceDoc>,
    pub(crate) facts: Vec<XeroFact>,
    /// What the order needs ([`Plan`]), decided before any call and revised once its invoice
    /// is built.
    pub(crate) plan: Plan,
    /// How the invoice was written in this batch, if it was (created, adopted or updated).
    pub(crate) written: Option<XeroVerb>,
    /// Refund messages held back (nak), with why: see [`TenantWorker::hold_refunds`].
    pub(crate) held: Vec<(usize, String)>,
    /// Stream sequence of the message this group's review entry was made from.
    pub(crate) reviewed_seq: Option<u64>,
}

impl OrderWork {
    pub(crate) fn live(&self) -> bool {
        self.fail.is_none()
    }

    /// The order's snapshot while its payments are to be made to hold: it converges, its
    /// invoice is in Xero and not voided, and the order is not cancelled.
    pub(crate) fn payable(&self) -> Option<Order> {
        let order = self.order.as_ref().and_then(|(e, _)| e.order.as_ref())?;
        let e = &self.led.entry;
        (self.live()
            && self.plan.converges()
            && !e.invoice_id.is_empty()
            && !e.voided
            && order.status != OrderStatus::Cancelled as i32)
            .then(|| order.clone())
    }

    /// The message a review entry of the order is made from: its snapshot's, else the first.
    pub(crate) fn order_msg(&self) -> usize {
        self.order.as_ref().map_or(self.msgs[0], |(_, i)| *i)
    }

    pub(crate) fn version(&self) -> u64 {
        self.order
            .as_ref()
            .and_then(|(e, _)| e.order.as_ref())
            .map_or(0, |o| o.version)
    }

    pub(crate) fn revision(&self) -> String {
        self.order
            .as_ref()
            .and_then(|(e, _)| e.meta.as_ref())
            .map(|m| m.mapping_revision.clone())
            .unwrap_or_default()
    }

    /// When the writer converted the order into the base currency: the store's currency and
    /// the rate (from the conversion's attribute, `<currency> <total> @ <rate>`).
    pub(crate) fn fx(&self) -> Option<(String, String)> {
        let order = self.order.as_ref().and_then(|(e, _)| e.order.as_ref())?;
        let text = order.attributes.get(crate::compose::FX_ATTRIBUTE)?;
        let (from, rest) = text.split_once(' ')?;
        let (_, rate) = rest.split_once(" @ ")?;
        Some((from.to_owned(), rate.trim().to_owned()))
    }

    pub(crate) fn order_id(&self) -> String {
        match (&self.order, self.refunds.first()) {
            (Some((e, _)), _) => e.order.as_ref().map(|o| o.id.clone()).unwrap_or_default(),
            (None, Some((r, _))) => r.order_id.clone(),
            _ => String::new(),
        }
    }

    /// Refund messages of a reviewed group that are neither written nor the reviewed message.
    pub(crate) fn unsettled_refunds(&self) -> Vec<usize> {
        if !matches!(self.fail, Some(Fail::Dead)) {
            return vec![];
        }
        self.refunds
            .iter()
            .filter(|(r, _)| {
                let rid = r.refund.as_ref().map(|x| x.id.as_str()).unwrap_or_default();
                !self.led.entry.credit_notes.contains_key(rid)
            })
            .map(|(_, i)| *i)
            .collect()
    }

    /// An amount from Xero's answer. An unreadable one fails the group (retried, then
    /// dead-lettered with the reason): it is never read as 0.
    pub(crate) fn amount(&mut self, v: Option<Decimal>, key: &str) -> Option<Decimal> {
        match v.need(key) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "Xero's answer has an unreadable amount.");
                self.transient(e.to_string());
                None
            }
        }
    }

    pub(crate) fn transient(&mut self, why: impl Into<String>) {
        if self.fail.is_none() {
            self.fail = Some(Fail::Transient(why.into()));
        }
    }
}

pub(crate) fn decode(msg: &Message) -> Result<Decoded, (ReasonClass, String)> {
    let schema = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::SCHEMA))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| {
            if subjects::is_refund(&msg.subject) {
                RefundEvent::NAME.to_owned()
            } else {
                OrderEvent::NAME.to_owned()
            }
        });
    if schema == RefundEvent::NAME {
        RefundEvent::decode(msg.payload.as_ref())
            .map(|e| Decoded::Refund(Box::new(e)))
            .map_err(|e| (ReasonClass::Malformed, format!("RefundEvent: {e}")))
    } else if schema == OrderEvent::NAME {
        OrderEvent::decode(msg.payload.as_ref())
            .map(|e| Decoded::Order(Box::new(e)))
            .map_err(|e| (ReasonClass::Malformed, format!("OrderEvent: {e}")))
    } else {
        Err((
            ReasonClass::Unsupported,
            format!("unknown schema {schema:?}"),
        ))
    }
}
