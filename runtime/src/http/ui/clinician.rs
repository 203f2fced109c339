//! A clinician's pages: the start page (today's list, the fortnight, recently seen), patients
//! (search), a patient's chart (details, care team, records with upload and live OCR progress,
//! appointments) and their own hours and absences.
//!
//! Who appears is what `GET /api/v1/patients` and `GET /api/v1/patients/{id}` answer this
//! caller: a patient of another doctor is not in the list and their chart is the API's 404.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::access::{ListAppointments, ListPatients, ReadClinician, ReadReference, UploadToPatient};
use careport_actors::door::PageRequest;
use careport_actors::door::appointments::AppointmentQuery;
use careport_actors::door::dashboard::SeenPatient;
use careport_actors::door::patients::PatientQuery;
use careport_actors::door::views::Appointment;
use careport_actors::{Caller, Services};
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use super::patient::{RecordFilter, records_of};
use super::{View, also, app_data, caller, pass};

/// The record types, for upload forms and filters.
pub async fn record_types(services: &Services, caller: &Caller) -> serde_json::Value {
    match also::<ReadReference>(services, caller, None).await {
        Ok(p) => match services.reference().record_types(p).await {
            Ok(items) => serde_json::to_value(items).map(|v| v["items"].clone()).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        },
        Err(_) => serde_json::Value::Null,
    }
}

/// Patients' names by id, as the patient list shows them to this caller.
async fn patient_names(services: &Services, caller: &Caller) -> HashMap<String, String> {
    let Ok(pass) = also::<ListPatients>(services, caller, None).await else { return HashMap::new() };
    let q = PatientQuery {
        q: None,
        department: None,
        cancer_type: None,
        include_deleted: false,
        page: PageRequest { limit: Some(200), cursor: None },
    };
    match services.patients().list(pass, q).await {
        Ok(p) => p.items.into_iter().map(|p| (p.id.to_string(), p.full_name)).collect(),
        Err(_) => HashMap::new(),
    }
}

/// The clinician's start page.
pub async fn home(
    view: &View,
    services: &Services,
    caller: &Caller,
    patients: i64,
    today: Vec<Appointment>,
    upcoming: Vec<Appointment>,
    recently_seen: Vec<SeenPatient>,
) -> HttpResponse {
    let names = patient_names(services, caller).await;
    view.render("home_clinician.html", context! { patients, today, upcoming, recently_seen, names })
}

#[derive(Deserialize, Default)]
pub struct PatientSearch {
    pub q: Option<String>,
    pub cursor: Option<String>,
}

/// `GET /patients?q=`: the patients the caller may see.
pub async fn patients(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ListPatients>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let q: PatientSearch =
        web::Query::<PatientSearch>::from_query(req.query_string()).map(web::Query::into_inner).unwrap_or_default();
    let services = app_data::<Services>(&req);
    let query = PatientQuery {
        q: q.q.clone().filter(|s| !s.trim().is_empty()),
        department: None,
        cancer_type: None,
        include_deleted: false,
        page: PageRequest { limit: Some(50), cursor: q.cursor.filter(|c| !c.is_empty()) },
    };
    match services.patients().list(pass, query).await {
        Ok(p) => view.render("patients.html", context! { items => p.items, next_cursor => p.next_cursor, q => q.q }),
        Err(e) => view.error(&e),
    }
}

/// `GET /patients/{id}`: a patient's chart.
pub async fn chart(req: HttpRequest, id: web::Path<Uuid>) -> HttpResponse {
    let id = id.into_inner();
    let caller = match caller(&req).await {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let view = View::new(&req, Some(&caller)).await;
    // The read decides (404 for a patient the caller may not see) and is audited.
    let patient = match services.patients().read(caller.clone(), id).await {
        Ok(p) => p,
        Err(e) => return view.error(&e),
    };
    let f: RecordFilter =
        web::Query::<RecordFilter>::from_query(req.query_string()).map(web::Query::into_inner).unwrap_or_default();
    let (records, next_cursor, f) = match records_of(&services, &caller, id, f).await {
        Ok(r) => r,
        Err(e) => return view.error(&e),
    };
    let appointments = match also::<ListAppointments>(&services, &caller, None).await {
        Ok(p) => {
            let q = AppointmentQuery {
                status: None,
                patient_id: Some(id),
                clinician_id: None,
                from: None,
                to: None,
                page: PageRequest { limit: Some(20), cursor: None },
            };
            services.appointments().list(p, q).await.map(|p| p.items).unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    let can_upload = services.access.allows::<UploadToPatient>(&caller, Some(id)).await;
    let types = record_types(&services, &caller).await;
    let names = super::patient::clinician_names(&services, &caller).await;
    view.render(
        "chart.html",
        context! {
            patient, records, next_cursor, appointments, can_upload, types, names, patient_id => id,
            filter => context! { record_type => f.record_type, q => f.q, from => f.from, to => f.to },
        },
    )
}

/// `GET /hours`: the caller's own weekly hours and absences.
pub async fn hours(req: HttpRequest) -> HttpResponse {
    let caller = match caller(&req).await {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let view = View::new(&req, Some(&caller)).await;
    let me = caller.user();
    let pass = match also::<ReadClinician>(&services, &caller, Some(me)).await {
        Ok(p) => p,
        Err(e) => return view.error(&e),
    };
    match services.clinicians().read(pass).await {
        Ok(c) => {
            let c = serde_json::to_value(c).unwrap_or_default();
            let hours = &c["working_hours"];
            // One row per weekday (the form edits one span a day; more spans show as they are).
            let mut days = Vec::new();
            for wd in 1..=7i64 {
                let spans: Vec<&serde_json::Value> = hours
                    .as_array()
                    .map(|a| a.iter().filter(|h| h["weekday"].as_i64() == Some(wd)).collect())
                    .unwrap_or_default();
                let hm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
                let first = spans.first();
                days.push(context! {
                    weekday => wd,
                    start => first.and_then(|h| h["start_minute"].as_i64()).map(hm),
                    end => first.and_then(|h| h["end_minute"].as_i64()).map(hm),
                    more => spans.len() > 1,
                });
            }
            view.render("hours.html", context! { clinician => c, days, clinician_id => me })
        }
        Err(e) => view.error(&e),
    }
}
