//! Contacts: create, upsert (ContactID, then ContactNumber, then Name), archive, and the
//! contact lookup documents use.

use super::*;

impl Ctx<'_> {
    // ---------- contacts ----------

    pub(super) fn contact_element(
        &mut self,
        raw: &RawValue,
        upsert: bool,
        target: Option<Uuid>,
    ) -> (String, bool) {
        let input: ContactIn = match parse_el(raw) {
            Ok(c) => c,
            Err(e) => return (error_json(&e), false),
        };
        let summarize = self
            .req
            .q("summarizeerrors")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let mut errors = Vec::new();
        // Which existing contact this element updates, if any.
        let existing_idx = if let Some(id) = target {
            self.t.contacts.iter().position(|c| c.contact_id == id)
        } else if upsert {
            if let Some(id) = input.contact_id {
                let idx = self.t.contacts.iter().position(|c| c.contact_id == id);
                if idx.is_none() {
                    errors.push(Message::new(format!(
                        "The contact with ContactID {id} could not be found"
                    )));
                }
                idx
            } else if let Some(n) = input.contact_number.as_deref().filter(|n| !n.is_empty()) {
                self.t
                    .contacts
                    .iter()
                    .position(|c| c.contact_number.as_deref() == Some(n))
            } else {
                None
            }
            .or_else(|| {
                input.name.as_deref().and_then(|n| {
                    self.t.contacts.iter().position(|c| {
                        c.contact_status == "ACTIVE" && c.name.trim().eq_ignore_ascii_case(n.trim())
                    })
                })
            })
        } else {
            if let Some(id) = input.contact_id
                && self.t.contacts.iter().any(|c| c.contact_id == id)
            {
                errors.push(Message::new("A contact with this ContactID already exists"));
            }
            None
        };
        let now = Utc::now();
        let mut c = match existing_idx {
            Some(i) => self.t.contacts[i].clone(),
            None => Contact {
                contact_id: Uuid::new_v4(),
                contact_number: None,
                account_number: None,
                contact_status: "ACTIVE".into(),
                name: String::new(),
                first_name: None,
                last_name: None,
                email_address: None,
                tax_number: None,
                default_currency: None,
                addresses: Vec::new(),
                phones: Vec::new(),
                contact_persons: Vec::new(),
                payment_terms: None,
                is_supplier: false,
                is_customer: false,
                has_attachments: false,
                updated_date_utc: now,
                has_validation_errors: false,
                outcome: Outcome::default(),
            },
        };
        macro_rules! set {
            ($f:ident) => {
                if let Some(v) = input.$f.clone() {
                    c.$f = Some(v);
                }
            };
        }
        set!(contact_number);
        set!(account_number);
        set!(first_name);
        set!(last_name);
        set!(email_address);
        set!(tax_number);
        set!(default_currency);
        if let Some(n) = &input.name {
            c.name = n.trim().to_string();
        }
        if let Some(s) = &input.contact_status {
            c.contact_status = s.to_ascii_uppercase();
        }
        if let Some(a) = input.addresses.clone() {
            c.addresses = a;
        }
        if let Some(p) = input.phones.clone() {
            c.phones = p;
        }
        if let Some(p) = input.contact_persons.clone() {
            c.contact_persons = p;
        }
        if let Some(t) = input.payment_terms.clone() {
            if let Some(e) = t.problem() {
                errors.push(Message::new(e));
            }
            c.payment_terms = Some(t);
        }
        if c.name.is_empty() {
            errors.push(Message::new("The contact name must be specified"));
        }
        if c.name.chars().count() > 255 {
            errors.push(Message::new(
                "The contact name must be 255 characters or fewer",
            ));
        }
        if c.contact_number
            .as_ref()
            .is_some_and(|n| n.chars().count() > 50)
        {
            errors.push(Message::new(
                "The contact number must be 50 characters or fewer",
            ));
        }
        if !["ACTIVE", "ARCHIVED", "GDPRREQUEST"].contains(&c.contact_status.as_str()) {
            errors.push(Message::new(format!(
                "'{}' is not a valid ContactStatus",
                c.contact_status
            )));
        }
        let me = c.contact_id;
        if c.contact_status == "ACTIVE"
            && self.t.contacts.iter().any(|o| {
                o.contact_id != me
                    && o.contact_status == "ACTIVE"
                    && o.name.trim().eq_ignore_ascii_case(&c.name)
            })
        {
            errors.push(Message::new(format!(
                "The contact name {} is already assigned to another contact. The contact name must be unique across all active contacts.",
                c.name
            )));
        }
        if let Some(n) = c.contact_number.as_deref().filter(|n| !n.is_empty())
            && self
                .t
                .contacts
                .iter()
                .any(|o| o.contact_id != me && o.contact_number.as_deref() == Some(n))
        {
            errors.push(Message::new(
                "Another contact has this contact number. The contact number must be unique.",
            ));
        }
        if !errors.is_empty() {
            if existing_idx.is_none() {
                c.contact_id = input.contact_id.unwrap_or(EMPTY);
            }
            c.has_validation_errors = true;
            c.outcome = Outcome {
                status_attribute_string: Some("ERROR".into()),
                validation_errors: errors,
                warnings: vec![],
            };
            return (ser(&c), false);
        }
        c.updated_date_utc = now;
        let kind = match existing_idx {
            Some(i) => {
                self.t.contacts[i] = c.clone();
                // Embedded copies follow the contact's name.
                for inv in self
                    .t
                    .invoices
                    .iter_mut()
                    .filter(|i| i.contact.contact_id == me)
                {
                    inv.contact = ContactRef::from(&c);
                }
                EventKind::Update
            }
            None => {
                self.t.contacts.push(c.clone());
                EventKind::Create
            }
        };
        self.touch(Category::Contact, kind, me);
        if summarize {
            c.outcome.status_attribute_string = Some("OK".into());
        }
        (ser(&c), true)
    }

    /// Finds or (by name) creates the contact a document points at.
    pub(super) fn resolve_contact(
        &mut self,
        c: &Option<ContactIn>,
        errors: &mut Vec<Message>,
    ) -> ContactRef {
        let blank = ContactRef {
            contact_id: EMPTY,
            contact_number: None,
            name: String::new(),
            contact_status: String::new(),
            has_validation_errors: false,
        };
        let Some(c) = c else {
            errors.push(Message::new(
                "The Contact must contain at least 1 of the following elements to identify the contact: Name, ContactID, ContactNumber",
            ));
            return blank;
        };
        let found = if let Some(id) = c.contact_id {
            let f = self.t.contacts.iter().find(|x| x.contact_id == id);
            if f.is_none() {
                errors.push(Message::new(format!(
                    "The contact with ContactID {id} does not exist"
                )));
                return blank;
            }
            f
        } else if let Some(n) = c.contact_number.as_deref().filter(|n| !n.is_empty()) {
            let f = self
                .t
                .contacts
                .iter()
                .find(|x| x.contact_number.as_deref() == Some(n));
            if f.is_none() && c.name.is_none() {
                errors.push(Message::new(format!(
                    "The contact with ContactNumber {n} does not exist"
                )));
                return blank;
            }
            // Not found by number: an active contact of the same name is the match, as on Xero.
            f.or_else(|| {
                let name = c.name.as_deref().unwrap_or_default().trim();
                self.t
                    .contacts
                    .iter()
                    .find(|x| x.contact_status == "ACTIVE" && x.name.eq_ignore_ascii_case(name))
            })
        } else if let Some(n) = c.name.as_deref().filter(|n| !n.trim().is_empty()) {
            self.t
                .contacts
                .iter()
                .find(|x| x.contact_status == "ACTIVE" && x.name.eq_ignore_ascii_case(n.trim()))
        } else {
            errors.push(Message::new(
                "The Contact must contain at least 1 of the following elements to identify the contact: Name, ContactID, ContactNumber",
            ));
            return blank;
        };
        match found {
            Some(x) if x.contact_status == "ARCHIVED" => {
                errors.push(Message::new(format!(
                    "The contact '{}' has been archived. Documents cannot be created or updated for archived contacts.",
                    x.name
                )));
                ContactRef::from(x)
            }
            Some(x) => {
                // Extra fields sent with the contact reference update the contact, as on Xero
                // (a known trap for integrations that send the whole customer each time).
                let id = x.contact_id;
                let name_taken = c.name.as_deref().is_some_and(|n| {
                    self.t.contacts.iter().any(|o| {
                        o.contact_id != id
                            && o.contact_status == "ACTIVE"
                            && o.name.eq_ignore_ascii_case(n.trim())
                    })
                });
                let updated = if name_taken {
                    None
                } else {
                    self.t
                        .contacts
                        .iter_mut()
                        .find(|o| o.contact_id == id)
                        .and_then(|o| {
                            let before = (
                                o.name.clone(),
                                o.email_address.clone(),
                                o.first_name.clone(),
                                o.last_name.clone(),
                            );
                            if let Some(n) = c.name.as_deref().filter(|n| !n.trim().is_empty()) {
                                o.name = n.trim().to_string();
                            }
                            for (field, value) in [
                                (&mut o.email_address, &c.email_address),
                                (&mut o.first_name, &c.first_name),
                                (&mut o.last_name, &c.last_name),
                            ] {
                                if value.is_some() {
                                    field.clone_from(value);
                                }
                            }
                            let after = (
                                o.name.clone(),
                                o.email_address.clone(),
                                o.first_name.clone(),
                                o.last_name.clone(),
                            );
                            (before != after).then(|| {
                                o.updated_date_utc = Utc::now();
                                ContactRef::from(&*o)
                            })
                        })
                };
                match updated {
                    Some(r) => {
                        self.touch(Category::Contact, EventKind::Update, id);
                        r
                    }
                    None => {
                        let x = self
                            .t
                            .contacts
                            .iter()
                            .find(|o| o.contact_id == id)
                            .expect("found above");
                        ContactRef::from(x)
                    }
                }
            }
            None => {
                let name = c.name.clone().unwrap_or_default();
                if !errors.is_empty() {
                    return ContactRef { name, ..blank };
                }
                let now = Utc::now();
                let contact = Contact {
                    contact_id: Uuid::new_v4(),
                    contact_number: c.contact_number.clone(),
                    account_number: None,
                    contact_status: "ACTIVE".into(),
                    name: name.trim().to_string(),
                    first_name: c.first_name.clone(),
                    last_name: c.last_name.clone(),
                    email_address: c.email_address.clone(),
                    tax_number: None,
                    default_currency: None,
                    addresses: c.addresses.clone().unwrap_or_default(),
                    phones: c.phones.clone().unwrap_or_default(),
                    contact_persons: Vec::new(),
                    payment_terms: None,
                    is_supplier: false,
                    is_customer: false,
                    has_attachments: false,
                    updated_date_utc: now,
                    has_validation_errors: false,
                    outcome: Outcome::default(),
                };
                let r = ContactRef::from(&contact);
                self.touch(Category::Contact, EventKind::Create, contact.contact_id);
                self.t.contacts.push(contact);
                r
            }
        }
    }
}
