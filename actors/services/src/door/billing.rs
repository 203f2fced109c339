//! Billing (#18): a patient's bill items, their totals per status, paying and cancelling, and
//! the clinic's figures. Money is integer arithmetic in minor units of `clinic.currency` from
//! the request to the answer — quantities, prices and totals are `i64`, tax rates are basis
//! points, rounding is half up on exact integers — so no float ever touches an amount.
//! `overdue` is computed from the due date in the clinic's time zone at each read, so it never
//! goes stale; paying and cancelling are transitions with who and when, never edits.

use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::billing::{self, BillRow};
use serde::Serialize;
use uuid::Uuid;

use super::page::{Page, PageRequest};
use super::store_err;
use super::views::rfc3339;
use crate::Services;
use crate::access::{Pass, ReadBilling, ReadBillingStats, SettleBill, WriteBilling};
use crate::audit::{EventExt, outcome};

/// The billing operations.
pub struct Billing<'a>(pub(crate) &'a Services);

/// A new bill item, as a client sends it.
#[derive(Debug, Clone)]
pub struct NewBill {
    pub service_code: String,
    pub description: String,
    pub quantity: i64,
    /// Minor units (cents) of the clinic's currency.
    pub unit_price: i64,
    /// Percent as a decimal string with at most two decimals ("20", "5.5"); none: no tax.
    pub tax_rate: Option<String>,
    /// `YYYY-MM-DD`.
    pub due_date: String,
    /// `unpaid` (default) or `pending` (a claim with an insurer, a payment in progress).
    pub status: Option<String>,
    pub appointment_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub report_id: Option<Uuid>,
}

/// A bill item as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Bill {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub service_code: String,
    pub description: String,
    pub quantity: i64,
    pub unit_price: i64,
    /// Percent, as given ("20", "5.5").
    pub tax_rate: String,
    /// Quantity × unit price.
    pub subtotal: i64,
    pub tax: i64,
    pub total: i64,
    pub currency: String,
    pub due_date: String,
    /// `unpaid`, `pending`, `paid`, `cancelled`, or `overdue` (unpaid or pending past the due date).
    pub status: String,
    pub appointment_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub report_id: Option<Uuid>,
    pub created_by: Uuid,
    pub created_at: String,
    pub paid_at: Option<String>,
    pub paid_by: Option<Uuid>,
    pub cancelled_at: Option<String>,
    pub cancelled_by: Option<Uuid>,
}

/// Sums per status, in minor units.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub unpaid: i64,
    pub pending: i64,
    pub paid: i64,
    pub overdue: i64,
    pub cancelled: i64,
}

/// A patient's account: items oldest first, and the totals.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub currency: String,
    pub items: Vec<Bill>,
    pub totals: Totals,
}

/// Revenue of one month (by the day it was paid, in the clinic's time zone).
#[derive(Debug, Clone, Serialize)]
pub struct MonthRevenue {
    /// `YYYY-MM`.
    pub month: String,
    pub paid: i64,
    pub items: i64,
}

/// The clinic's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BillingStats {
    pub currency: String,
    pub from: String,
    pub to: String,
    pub revenue_by_month: Vec<MonthRevenue>,
    /// Open items (unpaid or pending) now, whatever their date.
    pub outstanding: i64,
    /// Of those, past their due date.
    pub overdue: i64,
}

/// A percent with at most two decimals, as basis points ("20" → 2000, "5.5" → 550). At most
/// 100 %.
pub fn basis_points(rate: &str) -> Result<i64, Error> {
    let bad = || {
        Error::with_message(
            Code::InvalidValue,
            "tax_rate must be a percent from 0 to 100 with at most two decimals, as a string (\"20\", \"5.5\").",
        )
    };
    let (whole, frac) = rate.trim().split_once('.').unwrap_or((rate.trim(), ""));
    if whole.is_empty()
        || whole.len() > 3
        || frac.len() > 2
        || !whole.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().map_err(|_| bad())? };
    let bp = whole * 100 + frac;
    if bp > 10_000 { Err(bad()) } else { Ok(bp) }
}

/// Basis points back to the percent text ("5.5").
fn percent(bp: i64) -> String {
    match bp % 100 {
        0 => (bp / 100).to_string(),
        f if f % 10 == 0 => format!("{}.{}", bp / 100, f / 10),
        f => format!("{}.{f:02}", bp / 100),
    }
}

/// `(subtotal, tax, total)` of an item, exactly: tax rounded half up to the minor unit.
/// `None` when an amount would not fit in an `i64`.
pub fn amounts(quantity: i64, unit_price: i64, tax_bp: i64) -> Option<(i64, i64, i64)> {
    let subtotal = quantity.checked_mul(unit_price)?;
    let tax = (i128::from(subtotal) * i128::from(tax_bp) + 5_000) / 10_000;
    let tax = i64::try_from(tax).ok()?;
    Some((subtotal, tax, subtotal.checked_add(tax)?))
}

fn text(field: &str, v: &str, max: usize) -> Result<String, Error> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Error::with_message(Code::InvalidValue, format!("{field} must be 1 to {max} characters of text.")));
    }
    Ok(v.to_owned())
}

impl Billing<'_> {
    fn today(&self) -> String {
        jiff::Timestamp::from_millisecond(now_ms())
            .map(|t| t.to_zoned(self.0.clinic.time_zone().clone()).date().to_string())
            .unwrap_or_default()
    }

    fn view(&self, b: &BillRow, today: &str) -> Bill {
        let (subtotal, tax, _) = amounts(b.quantity, b.unit_price, b.tax_rate_bp).unwrap_or((b.total, 0, b.total));
        let open = matches!(b.status.as_str(), "unpaid" | "pending");
        Bill {
            id: b.id,
            patient_id: b.patient_id,
            service_code: b.service_code.clone(),
            description: b.description.clone(),
            quantity: b.quantity,
            unit_price: b.unit_price,
            tax_rate: percent(b.tax_rate_bp),
            subtotal,
            tax,
            total: b.total,
            currency: b.currency.clone(),
            due_date: b.due_date.clone(),
            status: if open && b.due_date.as_str() < today { "overdue".into() } else { b.status.clone() },
            appointment_id: b.appointment_id,
            record_id: b.record_id,
            report_id: b.report_id,
            created_by: b.created_by,
            created_at: rfc3339(b.created_at),
            paid_at: b.paid_at.map(rfc3339),
            paid_by: b.paid_by,
            cancelled_at: b.cancelled_at.map(rfc3339),
            cancelled_by: b.cancelled_by,
        }
    }

    /// A patient's account: every item with its status as of today, and the totals per status.
    /// Audited as a read of the patient's data.
    pub async fn account(&self, pass: Pass<ReadBilling>) -> Result<Account, Error> {
        let patient = pass.id();
        super::patients::live_chart(self.0, patient).await?;
        let rows = billing::for_patient(&self.0.db, patient, 10_000).await.map_err(store_err)?;
        self.0
            .audit
            .one(
                pass.caller().ctx.event("billing.read", outcome::SUCCESS).resource("billing", patient).patient(patient),
            )
            .await?;
        let today = self.today();
        let items: Vec<Bill> = rows.iter().map(|b| self.view(b, &today)).collect();
        let mut totals = Totals::default();
        for b in &items {
            let slot = match b.status.as_str() {
                "unpaid" => &mut totals.unpaid,
                "pending" => &mut totals.pending,
                "paid" => &mut totals.paid,
                "overdue" => &mut totals.overdue,
                _ => &mut totals.cancelled,
            };
            *slot = slot.saturating_add(b.total);
        }
        Ok(Account { currency: self.0.clinic.config().currency.clone(), items, totals })
    }

    /// Add an item to a patient's account (audited, with its total, never its description).
    pub async fn create(&self, pass: Pass<WriteBilling>, new: NewBill) -> Result<Bill, Error> {
        let patient = pass.id();
        let service_code = text("service_code", &new.service_code, 32)?;
        let description = text("description", &new.description, 500)?;
        if !(1..=100_000).contains(&new.quantity) {
            return Err(Error::with_message(Code::InvalidValue, "quantity must be a whole number from 1 to 100000."));
        }
        if !(0..=100_000_000_000).contains(&new.unit_price) {
            return Err(Error::with_message(
                Code::InvalidValue,
                "unit_price must be a whole number of minor units (cents) from 0 to 100000000000.",
            ));
        }
        let tax_bp = new.tax_rate.as_deref().map(basis_points).transpose()?.unwrap_or(0);
        let due: jiff::civil::Date = new
            .due_date
            .parse()
            .map_err(|_| Error::with_message(Code::InvalidValue, "due_date must be a date, YYYY-MM-DD."))?;
        let status = new.status.as_deref().unwrap_or("unpaid");
        if !matches!(status, "unpaid" | "pending") {
            return Err(Error::with_message(
                Code::InvalidValue,
                "status must be unpaid or pending; paying and cancelling are their own requests.",
            ));
        }
        let (_, _, total) = amounts(new.quantity, new.unit_price, tax_bp)
            .ok_or_else(|| Error::with_message(Code::InvalidValue, "The amount is too large."))?;
        super::patients::live_chart(self.0, patient).await?;
        self.check_links(patient, &new).await?;
        let now = now_ms();
        let row = BillRow {
            id: Uuid::now_v7(),
            patient_id: patient,
            service_code,
            description,
            quantity: new.quantity,
            unit_price: new.unit_price,
            tax_rate_bp: tax_bp,
            total,
            currency: self.0.clinic.config().currency.clone(),
            due_date: due.to_string(),
            appointment_id: new.appointment_id,
            record_id: new.record_id,
            report_id: new.report_id,
            status: status.to_owned(),
            created_by: pass.caller().user(),
            created_at: now,
            paid_at: None,
            paid_by: None,
            cancelled_at: None,
            cancelled_by: None,
        };
        billing::insert(&self.0.db, &row).await.map_err(store_err)?;
        self.0
            .audit
            .one(
                pass.caller()
                    .ctx
                    .event("billing.create", outcome::SUCCESS)
                    .resource("bill", row.id)
                    .patient(patient)
                    .detail(format!("{} {} {}", row.service_code, row.total, row.currency)),
            )
            .await?;
        Ok(self.view(&row, &self.today()))
    }

    /// What an item points to must be of the same chart (422 otherwise: never another chart's).
    async fn check_links(&self, patient: Uuid, new: &NewBill) -> Result<(), Error> {
        let db = &self.0.db;
        let wrong = |what: &str| {
            Error::with_message(Code::InvalidValue, format!("{what} must name one of this patient's own {what}s."))
        };
        if let Some(a) = new.appointment_id {
            let row = careport_store::appointments::get(db, a).await.map_err(store_err)?;
            if row.is_none_or(|r| r.patient_id != patient) {
                return Err(wrong("appointment_id"));
            }
        }
        if let Some(r) = new.record_id {
            let row = careport_store::vault::record(db, r).await.map_err(store_err)?;
            if row.is_none_or(|r| r.patient_id != patient || r.deleted_at.is_some()) {
                return Err(wrong("record_id"));
            }
        }
        if let Some(r) = new.report_id {
            let row = careport_store::reports::get(db, r).await.map_err(store_err)?;
            if row.is_none_or(|r| r.patient_id != patient) {
                return Err(wrong("report_id"));
            }
        }
        Ok(())
    }

    /// Record an open item paid (who and when); 409 `bill_closed` if it is paid or cancelled.
    pub async fn pay(&self, pass: Pass<SettleBill>) -> Result<Bill, Error> {
        self.settle(pass, "paid").await
    }

    /// Cancel an open item (who and when); 409 `bill_closed` if it is paid or cancelled.
    pub async fn cancel(&self, pass: Pass<SettleBill>) -> Result<Bill, Error> {
        self.settle(pass, "cancelled").await
    }

    async fn settle(&self, pass: Pass<SettleBill>, to: &str) -> Result<Bill, Error> {
        let db = &self.0.db;
        let row = billing::get(db, pass.id()).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        let (by, at) = (pass.caller().user(), now_ms());
        let moved = if to == "paid" {
            billing::pay(db, row.id, by, at).await
        } else {
            billing::cancel(db, row.id, by, at).await
        }
        .map_err(store_err)?;
        if !moved {
            return Err(Error::new(Code::BillClosed));
        }
        let action = if to == "paid" { "billing.pay" } else { "billing.cancel" };
        self.0
            .audit
            .one(
                pass.caller()
                    .ctx
                    .event(action, outcome::SUCCESS)
                    .resource("bill", row.id)
                    .patient(row.patient_id)
                    .detail(format!("{} {}", row.total, row.currency)),
            )
            .await?;
        let row = billing::get(db, row.id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))?;
        Ok(self.view(&row, &self.today()))
    }

    /// The clinic's bill items across patients, newest first, paginated: all, or those whose status
    /// (as shown: `overdue` computed) is `status` — the front desk's list of what is overdue.
    /// Administrators (the figures' pass); one audit event names the page, not each patient.
    pub async fn all(
        &self,
        pass: Pass<ReadBillingStats>,
        status: Option<&str>,
        req: PageRequest,
    ) -> Result<Page<Bill>, Error> {
        let status = status.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("");
        if !status.is_empty() && !["unpaid", "pending", "paid", "overdue", "cancelled"].contains(&status) {
            return Err(Error::with_message(
                Code::InvalidQuery,
                "status is one of unpaid, pending, paid, overdue, cancelled.",
            ));
        }
        let limit = req.limit()?;
        let before = super::page::decode_uuid(req.cursor.as_deref())?;
        let today = self.today();
        let rows = billing::all(&self.0.db, status, &today, before, limit).await.map_err(store_err)?;
        self.0
            .audit
            .one(pass.caller().ctx.event("billing.list", outcome::SUCCESS).resource("billing", "*").detail(format!(
                "{} items{}",
                rows.len(),
                if status.is_empty() { String::new() } else { format!(", {status}") }
            )))
            .await?;
        let items: Vec<Bill> = rows.iter().map(|b| self.view(b, &today)).collect();
        Ok(Page::of(items, limit, |b| b.id.to_string()))
    }

    /// Revenue by month in `[from, to]` (dates, the clinic's time zone; default the last twelve
    /// months), and what is outstanding and overdue now.
    pub async fn stats(
        &self,
        _: Pass<ReadBillingStats>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<BillingStats, Error> {
        let tz = self.0.clinic.time_zone().clone();
        let date = |field: &str, v: &str| {
            v.parse::<jiff::civil::Date>()
                .map_err(|_| Error::with_message(Code::InvalidQuery, format!("{field} must be a date, YYYY-MM-DD.")))
        };
        let today: jiff::civil::Date = self.today().parse().map_err(Error::internal)?;
        let to = match to {
            Some(v) => date("to", v)?,
            None => today,
        };
        let from = match from {
            Some(v) => date("from", v)?,
            None => to.first_of_month().checked_sub(jiff::Span::new().months(11)).map_err(Error::internal)?,
        };
        if from > to {
            return Err(Error::with_message(Code::InvalidQuery, "from must not be after to."));
        }
        let start = |d: jiff::civil::Date| {
            d.to_zoned(tz.clone()).map(|z| z.timestamp().as_millisecond()).map_err(Error::internal)
        };
        let (lo, hi) = (start(from)?, start(to.tomorrow().map_err(Error::internal)?)?);
        let paid = billing::paid_between(&self.0.db, lo, hi).await.map_err(store_err)?;
        let mut months: std::collections::BTreeMap<String, (i64, i64)> = std::collections::BTreeMap::new();
        let mut m = from.first_of_month();
        while m <= to {
            months.insert(format!("{:04}-{:02}", m.year(), m.month()), (0, 0));
            m = m.checked_add(jiff::Span::new().months(1)).map_err(Error::internal)?;
        }
        for (at, total) in paid {
            let d = jiff::Timestamp::from_millisecond(at).map_err(Error::internal)?.to_zoned(tz.clone()).date();
            let e = months.entry(format!("{:04}-{:02}", d.year(), d.month())).or_default();
            e.0 = e.0.saturating_add(total);
            e.1 += 1;
        }
        let today = today.to_string();
        let (mut outstanding, mut overdue) = (0i64, 0i64);
        for (due, total) in billing::open_items(&self.0.db).await.map_err(store_err)? {
            outstanding = outstanding.saturating_add(total);
            if due < today {
                overdue = overdue.saturating_add(total);
            }
        }
        Ok(BillingStats {
            currency: self.0.clinic.config().currency.clone(),
            from: from.to_string(),
            to: to.to_string(),
            revenue_by_month: months
                .into_iter()
                .map(|(month, (paid, items))| MonthRevenue { month, paid, items })
                .collect(),
            outstanding,
            overdue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tax_rates_are_basis_points_and_amounts_round_half_up() {
        assert_eq!(basis_points("20").expect("20"), 2000);
        assert_eq!(basis_points("5.5").expect("5.5"), 550);
        assert_eq!(basis_points("0.05").expect("0.05"), 5);
        assert_eq!(basis_points("100").expect("100"), 10_000);
        for bad in ["", "-1", "100.01", "5.555", "1e2", "abc", ".5", "20%"] {
            assert!(basis_points(bad).is_err(), "{bad}");
        }
        assert_eq!((percent(2000), percent(550), percent(5)), ("20".into(), "5.5".into(), "0.05".into()));
        // 3 × 3.33 = 9.99; 20 % of it is 1.998 → 2.00 (half up).
        assert_eq!(amounts(3, 333, 2000), Some((999, 200, 1199)));
        // 0.5 of a cent rounds up, 0.49 down.
        assert_eq!(amounts(1, 10, 5000), Some((10, 5, 15)));
        assert_eq!(amounts(1, 1, 4900), Some((1, 0, 1)));
        assert_eq!(amounts(i64::MAX, 2, 0), None);
    }

    proptest! {
        #[test]
        fn totals_are_exact_integers(q in 1i64..100_000, p in 0i64..100_000_000_000, bp in 0i64..=10_000) {
            let (sub, tax, total) = amounts(q, p, bp).expect("fits");
            prop_assert_eq!(sub, q * p);
            prop_assert_eq!(total, sub + tax);
            // Half up: tax*10000 is within half a unit of sub*bp.
            let exact = i128::from(sub) * i128::from(bp);
            prop_assert!((i128::from(tax) * 10_000 - exact).abs() <= 5_000);
            prop_assert_eq!(basis_points(&percent(bp)).expect("round trip"), bp);
        }
    }
}
