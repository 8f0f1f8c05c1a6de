//! Contacts' sales payment terms, for due dates (issue 6).

use crate::compose;
use crate::org::OrgSettings;
use crate::terms::Terms;
use crate::worker::TenantWorker;
use crate::worker::plan::Plan;
use crate::worker::work::OrderWork;
use ledgerline_contract::v1::OrderStatus;
use reqwest::Method;

impl TenantWorker {
    /// Reads the sales payment terms of the contacts whose orders carry no due date (batched,
    /// and only for contacts not read within the settings lifetime).
    pub(crate) async fn contact_terms(&self, groups: &mut [OrderWork], org: &OrgSettings) {
        let ttl = self.shared.config.settings_refresh;
        let mut wanted: Vec<String> = Vec::new();
        {
            let cache = self.terms.lock().unwrap_or_else(|e| e.into_inner());
            for g in groups.iter() {
                if !g.live()
                    || !matches!(g.plan, Plan::Converge(_))
                    || g.led.entry.contact_id.is_empty()
                {
                    continue;
                }
                let Some(order) = g.order.as_ref().and_then(|(e, _)| e.order.as_ref()) else {
                    continue;
                };
                if order.status == OrderStatus::Cancelled as i32
                    || compose::day_in(org.timezone, &order.due_date).is_some()
                {
                    continue;
                }
                let id = &g.led.entry.contact_id;
                let known = cache.get(id).is_some_and(|(_, at)| at.elapsed() < ttl);
                if !known && !wanted.contains(id) {
                    wanted.push(id.clone());
                }
            }
        }
        for chunk in wanted.chunks(40) {
            let resp = self
                .client
                .call(
                    Method::GET,
                    "/Contacts",
                    &[("IDs", chunk.join(",")), ("page", "1".into())],
                    None,
                )
                .await;
            match resp {
                Ok(v) => {
                    let mut cache = self.terms.lock().unwrap_or_else(|e| e.into_inner());
                    for id in chunk {
                        let terms = v
                            .contacts
                            .iter()
                            .find(|c| c.contact_id.eq_ignore_ascii_case(id))
                            .and_then(|c| c.payment_terms.as_ref())
                            .and_then(Terms::sales_of);
                        cache.insert(id.clone(), (terms, std::time::Instant::now()));
                    }
                }
                Err(e) => {
                    // Without the terms the due date would be wrong: try again later.
                    for g in groups
                        .iter_mut()
                        .filter(|g| chunk.contains(&g.led.entry.contact_id))
                    {
                        g.transient(format!("contact payment terms: {e}"));
                    }
                }
            }
        }
    }
}
