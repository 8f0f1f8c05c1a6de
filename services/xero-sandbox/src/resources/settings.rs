//! Writes to settings objects: currencies and tracking categories with their options.

use super::*;

impl Ctx<'_> {
    // ---------- settings writes ----------

    pub(super) fn put_currency(&mut self) -> Resp {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            code: String,
        }
        let els = match elements(self.req.body, "Currencies") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(Ok(c)) = els.first().map(|r| parse_el::<In>(r)) else {
            return bad_request("A currency Code is required");
        };
        let code = c.code.to_ascii_uppercase();
        if code.len() != 3 || !code.chars().all(|ch| ch.is_ascii_alphabetic()) {
            return bad_request(&format!("'{code}' is not a valid currency code"));
        }
        if !self.t.currencies.iter().any(|x| x.code == code) {
            self.t.currencies.push(Currency {
                code: code.clone(),
                description: String::new(),
            });
        }
        let cur = self.t.currencies.iter().find(|x| x.code == code).cloned();
        self.one("Currencies", &cur)
    }

    pub(super) fn put_tracking_category(&mut self) -> Resp {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            name: String,
        }
        let els = match elements(self.req.body, "TrackingCategories") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(Ok(c)) = els.first().map(|r| parse_el::<In>(r)) else {
            return bad_request("A tracking category Name is required");
        };
        let name = c.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return bad_request("Tracking category Name must be 1 to 100 characters");
        }
        if self
            .t
            .tracking_categories
            .iter()
            .any(|x| x.status == "ACTIVE" && x.name.eq_ignore_ascii_case(&name))
        {
            return bad_request(&format!(
                "A tracking category named '{name}' already exists"
            ));
        }
        if self
            .t
            .tracking_categories
            .iter()
            .filter(|x| x.status == "ACTIVE")
            .count()
            >= 2
        {
            return bad_request("An organisation can have at most 2 active tracking categories");
        }
        let cat = TrackingCategory {
            tracking_category_id: Uuid::new_v4(),
            name,
            status: "ACTIVE".into(),
            options: vec![],
        };
        self.t.tracking_categories.push(cat.clone());
        self.one("TrackingCategories", &cat)
    }

    pub(super) fn post_tracking_category(&mut self, id: &str) -> Resp {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct In {
            name: Option<String>,
            status: Option<String>,
        }
        let els = match elements(self.req.body, "TrackingCategories") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(Ok(input)) = els.first().map(|r| parse_el::<In>(r)) else {
            return bad_request("Invalid tracking category");
        };
        let active = self
            .t
            .tracking_categories
            .iter()
            .filter(|x| x.status == "ACTIVE")
            .count();
        let Some(cat) = self
            .t
            .tracking_categories
            .iter_mut()
            .find(|c| c.tracking_category_id.to_string() == id)
        else {
            return not_found();
        };
        if let Some(n) = input.name {
            cat.name = n;
        }
        if let Some(s) = input.status {
            let s = s.to_ascii_uppercase();
            if s == "ACTIVE" && cat.status != "ACTIVE" && active >= 2 {
                return bad_request(
                    "An organisation can have at most 2 active tracking categories",
                );
            }
            cat.status = s;
        }
        let cat = cat.clone();
        self.one("TrackingCategories", &cat)
    }

    /// Deletes a category or option. One in use on a document is archived instead, as Xero does.
    pub(super) fn delete_tracking(&mut self, id: &str, opt: Option<&str>) -> Resp {
        let in_use = |cat: Uuid, opt: Option<Uuid>| {
            let used = |l: &LineItem| {
                l.tracking.iter().any(|t| {
                    t.tracking_category_id == cat && opt.is_none_or(|o| o == t.tracking_option_id)
                })
            };
            self.t
                .invoices
                .iter()
                .any(|i| i.line_items.iter().any(used))
                || self
                    .t
                    .credit_notes
                    .iter()
                    .any(|c| c.line_items.iter().any(used))
        };
        let Some(ci) = self
            .t
            .tracking_categories
            .iter()
            .position(|c| c.tracking_category_id.to_string() == id)
        else {
            return not_found();
        };
        let cat_id = self.t.tracking_categories[ci].tracking_category_id;
        match opt {
            None => {
                let used = in_use(cat_id, None);
                let cat = &mut self.t.tracking_categories[ci];
                cat.status = if used { "ARCHIVED" } else { "DELETED" }.into();
                let out = cat.clone();
                if !used {
                    self.t.tracking_categories.remove(ci);
                }
                self.one("TrackingCategories", &out)
            }
            Some(o) => {
                let Some(oi) = self.t.tracking_categories[ci]
                    .options
                    .iter()
                    .position(|x| x.tracking_option_id.to_string() == o)
                else {
                    return not_found();
                };
                let opt_id = self.t.tracking_categories[ci].options[oi].tracking_option_id;
                let used = in_use(cat_id, Some(opt_id));
                let cat = &mut self.t.tracking_categories[ci];
                cat.options[oi].status = if used { "ARCHIVED" } else { "DELETED" }.into();
                let out = cat.options[oi].clone();
                if !used {
                    cat.options.remove(oi);
                }
                envelope(self.provider, "Options", &[ser(&out)], None::<&()>)
            }
        }
    }

    pub(super) fn put_tracking_option(&mut self, id: &str) -> Resp {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct In {
            name: String,
        }
        let els = match elements(self.req.body, "Options") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(cat) = self
            .t
            .tracking_categories
            .iter_mut()
            .find(|c| c.tracking_category_id.to_string() == id)
        else {
            return not_found();
        };
        let mut out = Vec::new();
        for raw in &els {
            let Ok(o) = parse_el::<In>(raw) else {
                return bad_request("A tracking option Name is required");
            };
            if cat
                .options
                .iter()
                .any(|x| x.name.eq_ignore_ascii_case(&o.name))
            {
                return bad_request(&format!(
                    "A tracking option named '{}' already exists",
                    o.name
                ));
            }
            let opt = TrackingOption {
                tracking_option_id: Uuid::new_v4(),
                name: o.name,
                status: "ACTIVE".into(),
            };
            cat.options.push(opt.clone());
            out.push(ser(&opt));
        }
        envelope(self.provider, "Options", &out, None::<&()>)
    }

    pub(super) fn post_tracking_option(&mut self, id: &str, opt: &str) -> Resp {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct In {
            name: Option<String>,
            status: Option<String>,
        }
        let els = match elements(self.req.body, "Options") {
            Ok(e) => e,
            Err(r) => return r,
        };
        let Some(Ok(input)) = els.first().map(|r| parse_el::<In>(r)) else {
            return bad_request("Invalid tracking option");
        };
        let Some(cat) = self
            .t
            .tracking_categories
            .iter_mut()
            .find(|c| c.tracking_category_id.to_string() == id)
        else {
            return not_found();
        };
        let Some(o) = cat
            .options
            .iter_mut()
            .find(|o| o.tracking_option_id.to_string() == opt)
        else {
            return not_found();
        };
        if let Some(n) = input.name {
            o.name = n;
        }
        if let Some(s) = input.status {
            o.status = s.to_ascii_uppercase();
        }
        let o = o.clone();
        envelope(self.provider, "Options", &[ser(&o)], None::<&()>)
    }
}
