//! Free slots: a clinician's weekly hours (local time in the clinic's zone) laid out on the
//! calendar, cut into appointments of the clinician's length, minus absences and bookings.
//! Pure functions of their inputs, so the rules are unit-tested without a store.

use careport_store::clinicians::Hours;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

const MINUTE_MS: i64 = 60_000;

/// A half-open interval of UTC milliseconds.
pub type Span = (i64, i64);

fn overlaps(a: Span, b: Span) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn local_date(tz: &TimeZone, ms: i64) -> Option<Date> {
    Some(Timestamp::from_millisecond(ms).ok()?.to_zoned(tz.clone()).date())
}

/// The instant of `minute` (0..=1440) of local day `date`. A local time skipped by a DST change
/// resolves to the instant just after the gap; an ambiguous one to its first occurrence.
fn instant(tz: &TimeZone, date: Date, minute: i64) -> Option<i64> {
    let (day, minute) = if minute >= 1440 { (date.tomorrow().ok()?, minute - 1440) } else { (date, minute) };
    let time = Time::new(i8::try_from(minute / 60).ok()?, i8::try_from(minute % 60).ok()?, 0, 0).ok()?;
    let zoned = day.to_datetime(time).to_zoned(tz.clone()).ok()?;
    Some(zoned.timestamp().as_millisecond())
}

/// Every slot the weekly hours give in `[from, to)`, ignoring absences and bookings.
pub fn working_slots(tz: &TimeZone, hours: &[Hours], slot_minutes: i64, from: i64, to: i64) -> Vec<Span> {
    let mut out = Vec::new();
    let (Some(first), Some(last)) = (local_date(tz, from), local_date(tz, to)) else { return out };
    let slot_ms = slot_minutes.max(1) * MINUTE_MS;
    let mut date = first.checked_sub(1.day()).unwrap_or(first);
    let end = last.checked_add(1.day()).unwrap_or(last);
    while date <= end {
        let weekday = i64::from(date.weekday().to_monday_one_offset());
        for h in hours.iter().filter(|h| h.weekday == weekday) {
            let mut minute = h.start_minute;
            while minute + slot_minutes <= h.end_minute {
                if let Some(start) = instant(tz, date, minute) {
                    let slot = (start, start + slot_ms);
                    if slot.0 >= from && slot.1 <= to {
                        out.push(slot);
                    }
                }
                minute += slot_minutes.max(1);
            }
        }
        match date.tomorrow() {
            Ok(d) => date = d,
            Err(_) => break,
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The free slots in `[from, to)` that start after `now`.
pub fn free_slots(working: &[Span], absences: &[Span], busy: &[Span], now: i64) -> Vec<Span> {
    working
        .iter()
        .copied()
        .filter(|s| s.0 > now)
        .filter(|s| !absences.iter().any(|a| overlaps(*s, *a)))
        .filter(|s| !busy.iter().any(|b| overlaps(*s, *b)))
        .collect()
}

/// Why a requested start is not bookable, checked in the order a person would want to hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InThePast,
    OutsideWorkingHours,
    Away,
    Taken,
}

/// Whether `start` is a free slot; the slot if so.
pub fn check_start(start: i64, now: i64, working: &[Span], absences: &[Span], busy: &[Span]) -> Result<Span, Refusal> {
    if start <= now {
        return Err(Refusal::InThePast);
    }
    let Some(slot) = working.iter().copied().find(|s| s.0 == start) else { return Err(Refusal::OutsideWorkingHours) };
    if absences.iter().any(|a| overlaps(slot, *a)) {
        return Err(Refusal::Away);
    }
    if busy.iter().any(|b| overlaps(slot, *b)) {
        return Err(Refusal::Taken);
    }
    Ok(slot)
}

/// Check a week of hours: weekdays 1 to 7, minutes within the day, start before end, no two
/// spans of one day overlapping. The message names the first problem.
pub fn check_hours(hours: &[Hours]) -> Result<(), (bool, String)> {
    for h in hours {
        if !(1..=7).contains(&h.weekday) {
            return Err((false, "weekday must be 1 (Monday) to 7 (Sunday).".into()));
        }
        if !(0..1440).contains(&h.start_minute) || !(1..=1440).contains(&h.end_minute) {
            return Err((false, "start_minute must be 0 to 1439 and end_minute 1 to 1440.".into()));
        }
        if h.start_minute >= h.end_minute {
            return Err((false, "Each span must start before it ends.".into()));
        }
    }
    let mut sorted: Vec<Hours> = hours.to_vec();
    sorted.sort_by_key(|h| (h.weekday, h.start_minute));
    for pair in sorted.windows(2) {
        if let [a, b] = pair
            && a.weekday == b.weekday
            && b.start_minute < a.end_minute
        {
            return Err((true, format!("Two spans of weekday {} overlap.", a.weekday)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().map(|t| t.as_millisecond()).expect("timestamp")
    }

    fn monday_9_to_12() -> Vec<Hours> {
        vec![Hours { weekday: 1, start_minute: 9 * 60, end_minute: 12 * 60 }]
    }

    #[test]
    fn hours_are_cut_into_slots_in_local_time() {
        let tz = TimeZone::get("Europe/Paris").expect("tz");
        // Monday 2026-11-30: Paris is UTC+1, so 09:00 local is 08:00Z.
        let slots = working_slots(&tz, &monday_9_to_12(), 30, ms("2026-11-30T00:00:00Z"), ms("2026-12-01T00:00:00Z"));
        assert_eq!(slots.len(), 6);
        assert_eq!(slots[0], (ms("2026-11-30T08:00:00Z"), ms("2026-11-30T08:30:00Z")));
        assert_eq!(slots[5].1, ms("2026-11-30T11:00:00Z"));
    }

    #[test]
    fn a_slot_that_does_not_fit_before_the_end_is_not_offered() {
        let tz = TimeZone::UTC;
        let hours = vec![Hours { weekday: 1, start_minute: 9 * 60, end_minute: 10 * 60 + 20 }];
        let slots = working_slots(&tz, &hours, 30, ms("2026-11-30T00:00:00Z"), ms("2026-12-01T00:00:00Z"));
        assert_eq!(slots.len(), 2, "09:00 and 09:30; 10:00-10:30 runs past 10:20");
    }

    #[test]
    fn daylight_saving_changes_keep_local_hours() {
        let tz = TimeZone::get("Europe/Paris").expect("tz");
        // Sunday 2026-03-29 clocks go forward; Monday 30 March 09:00 local is 07:00Z (UTC+2).
        let slots = working_slots(&tz, &monday_9_to_12(), 60, ms("2026-03-30T00:00:00Z"), ms("2026-03-31T00:00:00Z"));
        assert_eq!(slots[0].0, ms("2026-03-30T07:00:00Z"));
    }

    #[test]
    fn absences_bookings_and_the_past_remove_slots() {
        let working = vec![(0, 10), (10, 20), (20, 30), (30, 40)];
        let free = free_slots(&working, &[(25, 35)], &[(10, 20)], 5);
        assert_eq!(free, vec![]);
        let free = free_slots(&working, &[(25, 35)], &[(10, 20)], -1);
        assert_eq!(free, vec![(0, 10)]);
        assert_eq!(check_start(0, 5, &working, &[], &[]), Err(Refusal::InThePast));
        assert_eq!(check_start(12, 0, &working, &[], &[]), Err(Refusal::OutsideWorkingHours));
        assert_eq!(check_start(20, 0, &working, &[(25, 35)], &[]), Err(Refusal::Away));
        assert_eq!(check_start(10, 0, &working, &[], &[(10, 20)]), Err(Refusal::Taken));
        assert_eq!(check_start(10, 0, &working, &[], &[]), Ok((10, 20)));
    }

    #[test]
    fn overlapping_or_malformed_hours_are_refused() {
        let h = |weekday, start_minute, end_minute| Hours { weekday, start_minute, end_minute };
        assert!(check_hours(&[h(1, 540, 720), h(1, 780, 1020), h(2, 540, 720)]).is_ok());
        assert_eq!(check_hours(&[h(1, 540, 720), h(1, 700, 800)]).map_err(|e| e.0), Err(true));
        assert_eq!(check_hours(&[h(8, 540, 720)]).map_err(|e| e.0), Err(false));
        assert_eq!(check_hours(&[h(1, 720, 540)]).map_err(|e| e.0), Err(false));
    }
}
