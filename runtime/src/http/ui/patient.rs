//! A patient's pages — and the pages every role shares with them: the start page (next
//! appointment, care team, recent records, recent conversations), records (a chart's list with
//! filters and upload, one record with its viewer, OCR text and share link), appointments (free
//! slots by clinician and day, book, move, cancel), the assistant (sessions, streamed answers,
//! citations that open their passage) and "who opened my record".
//!
//! Each page calls the operations the API calls; a chart the caller may not see is the API's
//! 404 here too.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use careport_actors::access::{
    ListAppointments, ListClinicians, ListKnowledge, ListReports, ReadBilling, ReadChatSession, ReadDocument,
    ReadOwnAccessLog, UploadToPatient, UseChat,
};
use careport_actors::door::PageRequest;
use careport_actors::door::appointments::AppointmentQuery;
use careport_actors::door::clinicians::ClinicianQuery;
use careport_actors::door::records::RecordQuery;
use careport_actors::door::views::Appointment;
use careport_actors::{Caller, Services};
use careport_domain::{Code, Error};
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use super::{View, also, app_data, caller, pass};

fn page(limit: i64, cursor: Option<String>) -> PageRequest {
    PageRequest { limit: Some(limit), cursor }
}

/// Query strings of the pages: unknown fields are ignored (a page link may carry more).
fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, Error> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| Error::with_message(Code::InvalidQuery, "The address has a value this page does not understand."))
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Clinicians' names by id, as the directory shows them to this caller.
pub async fn clinician_names(services: &Services, caller: &Caller) -> HashMap<String, String> {
    let Ok(pass) = also::<ListClinicians>(services, caller, None).await else { return HashMap::new() };
    let q = ClinicianQuery {
        specialization: None,
        department: None,
        staff_role: None,
        available: None,
        page: page(200, None),
    };
    match services.clinicians().list(pass, q).await {
        Ok(p) => p.items.into_iter().map(|c| (c.id.to_string(), c.full_name.unwrap_or_default())).collect(),
        Err(_) => HashMap::new(),
    }
}

/// The patient's start page.
pub async fn home<T: serde::Serialize>(
    view: &View,
    services: &Services,
    caller: &Caller,
    patient_id: Uuid,
    next_appointment: Option<Appointment>,
    care_team: Vec<T>,
) -> HttpResponse {
    let records_of = services.records();
    let records =
        records_of.list(caller.clone(), patient_id, RecordQuery { page: page(5, None), ..RecordQuery::default() });
    let sessions = async {
        match also::<UseChat>(services, caller, None).await {
            Ok(pass) => services.chats().list(pass, page(3, None)).await.map(|p| p.items).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    };
    // The next appointment's clinician is usually in the care team; the directory only when not.
    let team = serde_json::to_value(&care_team).unwrap_or_default();
    let team_names: HashMap<String, String> = team
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|m| Some((m["clinician_id"].as_str()?.to_owned(), m["full_name"].as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let names = async {
        match &next_appointment {
            Some(a) if !team_names.contains_key(&a.clinician_id.to_string()) => clinician_names(services, caller).await,
            _ => team_names.clone(),
        }
    };
    let (records, sessions, names) = tokio::join!(records, sessions, names);
    let records = match records {
        Ok(p) => p.items,
        Err(e) => return view.error(&e),
    };
    view.render("home_patient.html", context! { patient_id, next_appointment, care_team, records, sessions, names })
}

#[derive(Deserialize, Default)]
pub struct RecordFilter {
    pub record_type: Option<String>,
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
}

/// A chart's records with filters (the caller's own chart at `/records`; a clinician's view
/// of a patient's chart embeds the same list).
pub async fn records_of(
    services: &Services,
    caller: &Caller,
    patient: Uuid,
    f: RecordFilter,
) -> Result<(Vec<careport_actors::door::views::Record>, Option<String>, RecordFilter), Error> {
    let q = RecordQuery {
        record_type: nonempty(f.record_type.clone()),
        from: nonempty(f.from.clone()),
        to: nonempty(f.to.clone()),
        q: nonempty(f.q.clone()),
        modality: None,
        page: page(25, nonempty(f.cursor.clone())),
    };
    let p = services.records().list(caller.clone(), patient, q).await?;
    Ok((p.items, p.next_cursor, f))
}

/// `GET /records`: the caller's own chart.
pub async fn my_records(req: HttpRequest) -> HttpResponse {
    let caller = match caller(&req).await {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let view = View::new(&req, Some(&caller)).await;
    let services = app_data::<Services>(&req);
    let f: RecordFilter = match query(&req) {
        Ok(f) => f,
        Err(e) => return view.error(&e),
    };
    let me = caller.user();
    let (records, next_cursor, f) = match records_of(&services, &caller, me, f).await {
        Ok(r) => r,
        Err(e) => return view.error(&e),
    };
    let can_upload = services.access.allows::<UploadToPatient>(&caller, Some(me)).await;
    let types = super::clinician::record_types(&services, &caller).await;
    view.render(
        "records.html",
        context! {
            patient_id => me, records, next_cursor, can_upload, types,
            filter => context! { record_type => f.record_type, q => f.q, from => f.from, to => f.to },
        },
    )
}

/// `GET /records/{id}`: one record — the viewer, its OCR text, download and share.
pub async fn record(req: HttpRequest, id: web::Path<Uuid>) -> HttpResponse {
    let id = id.into_inner();
    let (view, pass) = match pass::<ReadDocument>(&req, Some(id)).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let record = match services.records().read(pass).await {
        Ok(r) => r,
        Err(e) => return view.error(&e),
    };
    // The text, when OCR has read it (404 `text_not_ready` otherwise: the page offers OCR).
    let text = match also::<ReadDocument>(&services, &caller, Some(id)).await {
        Ok(p) => services.text().text(p).await.ok().map(|t| t.stored),
        Err(_) => None,
    };
    let can_share = services.access.allows::<careport_actors::access::ShareDocument>(&caller, Some(id)).await;
    let kind = if record.media_type.starts_with("image/") {
        "image"
    } else if record.media_type == "application/pdf" {
        "pdf"
    } else {
        "file"
    };
    let types = super::clinician::record_types(&services, &caller).await;
    view.render("record.html", context! { record, text, can_share, kind, types })
}

#[derive(Deserialize, Default)]
pub struct SlotQuery {
    pub clinician: Option<Uuid>,
    pub day: Option<String>,
    /// An appointment being moved: the slots are offered for it.
    #[serde(rename = "move")]
    pub moving: Option<Uuid>,
}

/// `GET /appointments`: the caller's appointments, and free slots of a clinician on a day to
/// book (or move one to).
pub async fn appointments(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ListAppointments>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let q: SlotQuery = match query(&req) {
        Ok(q) => q,
        Err(e) => return view.error(&e),
    };
    let now = jiff::Timestamp::now();
    let list = AppointmentQuery {
        status: None,
        patient_id: None,
        clinician_id: None,
        from: Some(now.checked_sub(jiff::SignedDuration::from_hours(24 * 30)).unwrap_or(now).to_string()),
        to: None,
        page: page(50, None),
    };
    let items = match services.appointments().list(pass, list).await {
        Ok(p) => p.items,
        Err(e) => return view.error(&e),
    };
    let names = clinician_names(&services, &caller).await;
    let mut clinicians: Vec<(String, String)> = names.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    clinicians.sort_by(|a, b| a.1.cmp(&b.1));
    let tz = app_data::<super::Ui>(&req).time_zone().clone();
    let today = now.to_zoned(tz.clone()).date();
    // A day of the clinic's calendar, as the instants the slots operation takes.
    let instant = |d: jiff::civil::Date| d.to_zoned(tz.clone()).map(|z| z.timestamp().to_string()).unwrap_or_default();
    let day = q.day.as_deref().and_then(|d| d.parse::<jiff::civil::Date>().ok()).unwrap_or(today).max(today);
    let mut slots = Vec::new();
    let mut slot_error = None;
    if let Some(c) = q.clinician {
        match also::<careport_actors::access::ReadClinician>(&services, &caller, Some(c)).await {
            Ok(p) => {
                let next = day.tomorrow().unwrap_or(day);
                match services.clinicians().free_slots(p, &instant(day), &instant(next)).await {
                    Ok(s) => slots = s.items,
                    Err(e) => slot_error = Some(view.t(&format!("error.{}", e.code().as_str()))),
                }
            }
            Err(e) => slot_error = Some(view.t(&format!("error.{}", e.code().as_str()))),
        }
    }
    let patient_id = if view_has_chart(&services, &caller).await { Some(caller.user()) } else { None };
    view.render(
        "appointments.html",
        context! {
            items, names, clinicians, slots, slot_error, patient_id,
            chosen => q.clinician, day => day.to_string(), today => today.to_string(), move => q.moving,
        },
    )
}

async fn view_has_chart(services: &Services, caller: &Caller) -> bool {
    services.access.allows::<careport_actors::access::BookForPatient>(caller, Some(caller.user())).await
}

/// `GET /chat`: the caller's conversations; a new one starts from here.
pub async fn chat(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<UseChat>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    match services.chats().list(pass, page(50, None)).await {
        Ok(p) => {
            view.render("chat.html", context! { sessions => p.items, current => None::<()>, items => Vec::<()>::new() })
        }
        Err(e) => view.error(&e),
    }
}

/// `GET /chat/{id}`: one conversation, its suggestions, and the box to ask in (answers stream
/// over the session's WebSocket).
pub async fn chat_session(req: HttpRequest, id: web::Path<Uuid>) -> HttpResponse {
    let id = id.into_inner();
    let (view, pass) = match pass::<ReadChatSession>(&req, Some(id)).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let services = app_data::<Services>(&req);
    let caller = pass.caller().clone();
    let conversation = match services.chats().get(pass).await {
        Ok(c) => c,
        Err(e) => return view.error(&e),
    };
    let suggestions = match also::<ReadChatSession>(&services, &caller, Some(id)).await {
        Ok(p) => services.chats().suggestions(p, None).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let sessions = match also::<UseChat>(&services, &caller, None).await {
        Ok(p) => services.chats().list(p, page(50, None)).await.map(|p| p.items).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    view.render(
        "chat.html",
        context! { sessions, current => conversation.session, items => conversation.items, suggestions },
    )
}

#[derive(Deserialize)]
pub struct PassageQuery {
    pub start: i64,
    pub end: i64,
}

/// `GET /passages/{document}?start=&end=`: the passage a chat citation names, in its document.
pub async fn passage(req: HttpRequest, id: web::Path<Uuid>) -> HttpResponse {
    let id = id.into_inner();
    let (view, pass) = match pass::<ListKnowledge>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let q: PassageQuery = match query(&req) {
        Ok(q) => q,
        Err(e) => return view.error(&e),
    };
    let services = app_data::<Services>(&req);
    match services.knowledge().passage(pass, id, q.start, q.end).await {
        Ok(p) => view.render("passage.html", context! { passage => p }),
        Err(e) => view.error(&e),
    }
}

#[derive(Deserialize, Default)]
pub struct CursorQuery {
    pub cursor: Option<String>,
}

/// `GET /reports`: the caller's own diagnosis reports — those the policies let them read (signed
/// versions), the newest version of each.
pub async fn my_reports(req: HttpRequest) -> HttpResponse {
    let caller = match caller(&req).await {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let view = View::new(&req, Some(&caller)).await;
    let services = app_data::<Services>(&req);
    let listed = match also::<ListReports>(&services, &caller, Some(caller.user())).await {
        Ok(pass) => services.reports().list(pass).await,
        Err(e) => Err(e),
    };
    match listed {
        Ok(reports) => view.render("reports.html", context! { reports }),
        Err(e) => view.error(&e),
    }
}

/// `GET /billing`: the caller's own bills and their totals.
pub async fn my_billing(req: HttpRequest) -> HttpResponse {
    let caller = match caller(&req).await {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let view = View::new(&req, Some(&caller)).await;
    let services = app_data::<Services>(&req);
    let account = match also::<ReadBilling>(&services, &caller, Some(caller.user())).await {
        Ok(pass) => services.billing().account(pass).await,
        Err(e) => Err(e),
    };
    match account {
        Ok(account) => view.render("billing.html", context! { account }),
        Err(e) => view.error(&e),
    }
}

/// `GET /access-log`: who opened the caller's record, newest first.
pub async fn access_log(req: HttpRequest) -> HttpResponse {
    let (view, pass) = match pass::<ReadOwnAccessLog>(&req, None).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let q: CursorQuery = match query(&req) {
        Ok(q) => q,
        Err(e) => return view.error(&e),
    };
    let services = app_data::<Services>(&req);
    match services.patients().access_log(pass, page(50, nonempty(q.cursor))).await {
        Ok(p) => view.render("access_log.html", context! { items => p.items, next_cursor => p.next_cursor }),
        Err(e) => view.error(&e),
    }
}
