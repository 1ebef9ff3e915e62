//! What the wizard registers online, read from the host: the company's
//! registration data, the licence document bound to this company, the
//! system and company database ids, and this computer.

use crate::host::{Computer, Host};
use od_client::{Registration, RegistrationData};

/// Everything the company registration and the device need.
#[derive(Debug, Clone)]
pub struct CompanyData {
    pub registration: Registration,
    /// The company database's name in the host.
    pub company_name: String,
    pub computer: Computer,
    pub licence_number: String,
    pub licensee: String,
    /// Labels of the registration fields that are empty.
    pub missing: Vec<&'static str>,
}

/// The registration fields in the order shown, with their labels.
pub const REGISTRATION_FIELDS: [(&str, &str); 8] = [
    ("name", "Company name"),
    ("street", "Street"),
    ("postcode", "Postcode"),
    ("city", "City"),
    ("country", "Country"),
    ("phone", "Phone"),
    ("email", "E-mail"),
    ("organisation_number", "Organisation number"),
];

impl CompanyData {
    /// The value of one of [`REGISTRATION_FIELDS`].
    pub fn value(&self, field: &str) -> &str {
        let r = &self.registration.registration;
        match field {
            "name" => &r.name,
            "street" => &r.street,
            "postcode" => &r.postcode,
            "city" => &r.city,
            "country" => &r.country,
            "phone" => &r.phone,
            "email" => &r.email,
            "organisation_number" => &r.organisation_number,
            _ => "",
        }
    }
}

/// Reads the company data afresh (the person may fix it in the host while
/// the wizard is open). The error is a sentence for the page.
pub fn gather(host: &Host) -> Result<CompanyData, String> {
    let company = host.company_identity().map_err(|e| e.to_string())?;
    let system = host.system_identity().map_err(|e| e.to_string())?;
    let info = host.host_info().map_err(|e| e.to_string())?;
    let bound = host
        .bindings()
        .map_err(|e| e.to_string())?
        .bindings
        .into_iter()
        .find(|b| b.add_on == od_licence::ADD_ON_ONLINE_DESKTOP && b.company_id == company.id)
        .ok_or_else(|| {
            format!(
                "Online Desktop is not registered for {} in the licence settings. Register the licence for this \
                 company first ({}).",
                company.name,
                od_licence::REGISTRATION_PATH
            )
        })?;
    let (document, licence) = host
        .licence_documents()
        .map_err(|e| e.to_string())?
        .documents
        .into_iter()
        .find_map(|document| {
            let licence = od_licence::parse_unverified(&document).ok()?;
            (licence.licence_number == bound.licence_number).then_some((document, licence))
        })
        .ok_or_else(|| {
            format!(
                "The licence {} that Online Desktop is registered with is no longer in the licence settings. \
                 Register it again ({}).",
                bound.licence_number,
                od_licence::REGISTRATION_PATH
            )
        })?;
    let r = host.company_registration().map_err(|e| e.to_string())?;
    let text = |value: Option<String>| value.map(|v| v.trim().to_owned()).unwrap_or_default();
    let registration = Registration {
        licence_document: document,
        system_database_id: system.id,
        company_database_id: company.id,
        registration: RegistrationData {
            name: text(r.name),
            street: text(r.street),
            postcode: text(r.postcode),
            city: text(r.city),
            country: text(r.country),
            phone: text(r.phone),
            email: text(r.email),
            organisation_number: text(r.organisation_number),
        },
    };
    let mut data = CompanyData {
        registration,
        company_name: company.name,
        computer: info.computer,
        licence_number: licence.licence_number,
        licensee: licence.licensee_name,
        missing: Vec::new(),
    };
    data.missing = REGISTRATION_FIELDS
        .iter()
        .filter(|(field, _)| data.value(field).is_empty())
        .map(|(_, label)| *label)
        .collect();
    Ok(data)
}
