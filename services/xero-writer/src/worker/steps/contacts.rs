//! Contacts for the batch's orders: found, created or taken from the cache.

use crate::contacts::{self, ContactSpec, Resolved};
use crate::org::OrgSettings;
use crate::worker::TenantWorker;
use crate::worker::work::OrderWork;
use async_nats::jetstream::Message;
use ledgerline_contract::v1::{ReasonClass, XeroDocumentKind, XeroVerb};
use ledgerline_mapping::Effective;
use std::collections::HashMap;

impl TenantWorker {
    pub(crate) async fn contacts_phase(
        &self,
        groups: &mut [OrderWork],
        msgs: &[Message],
        mapping: &Effective,
        org: &OrgSettings,
    ) {
        let _ = (mapping, org);
        let specs: Vec<ContactSpec> = groups
            .iter()
            .filter(|g| g.live())
            .filter_map(|g| g.contact.clone())
            .collect();
        if specs.is_empty() {
            return;
        }
        let store_of: HashMap<String, String> = groups
            .iter()
            .filter_map(|g| {
                g.contact
                    .as_ref()
                    .map(|c| (c.contact_number.clone(), g.store.clone()))
            })
            .collect();
        let resolved = self
            .desk
            .resolve(contacts::Path::Orders, &store_of, specs)
            .await;
        for g in groups.iter_mut() {
            let Some(spec) = g.contact.clone() else {
                continue;
            };
            if !g.live() {
                continue;
            }
            match resolved.get(&spec.contact_number) {
                Some(Resolved::Id(id, origin)) => {
                    // A contact created now has its terms known already (the desk keeps them).
                    g.led.entry.contact_id = id.clone();
                    let verb = match origin {
                        contacts::Origin::Created => XeroVerb::Created,
                        contacts::Origin::Found => XeroVerb::Adopted,
                        // Already announced when it was first written or found.
                        contacts::Origin::Cached => continue,
                    };
                    let f = self.fact(
                        g,
                        XeroDocumentKind::Contact,
                        verb,
                        id,
                        &spec.contact_number,
                        None,
                        None,
                        "ACTIVE",
                    );
                    g.facts.push(f);
                }
                Some(Resolved::Refused(error)) => {
                    let idx = g.order_msg();
                    self.review(
                        g,
                        &msgs[idx],
                        ReasonClass::XeroValidation,
                        &format!("contact {}: {error}", spec.name),
                        vec![],
                    )
                    .await;
                }
                Some(Resolved::Transient(e)) => g.transient(e.clone()),
                None => g.transient("contact not resolved"),
            }
        }
    }
}
