//! Reset schedules: when a board's period ends. Plain calendar arithmetic on UTC unix
//! milliseconds handed in by the caller; nothing here reads a clock.
//!
//! Every schedule is a cron expression underneath (`daily` is `0 0 * * *`, `weekly` is
//! `0 0 * * 1`, Monday 00:00 UTC as ISO weeks start, `monthly` is `0 0 1 * *`). A period runs
//! from one firing to the next: [`Schedule::period_start`] is the last firing at or before
//! `now`, and the owner resets a board when that moves past the period it holds.

use std::fmt;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// Minute steps a search may take before it decides the expression never fires (a cron
/// expression like `0 0 30 2 *`). Whole days and months are skipped in one step, so ten years
/// of searching stays well under this.
const SEARCH_STEPS: usize = 200_000;

/// When a board resets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Never: one period forever.
    Never,
    /// A cron expression (minute hour day-of-month month day-of-week, UTC).
    Cron(Cron),
}

/// A five-field cron expression: `*`, numbers, `a-b` ranges, `,` lists and `/n` steps.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Day-of-month and day-of-week were both restricted: cron then fires on either.
    either_day: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

/// A schedule that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reset schedule {text:?}: {why}")]
pub struct ScheduleError {
    text: String,
    why: &'static str,
}

impl Schedule {
    /// `never`, `daily`, `weekly`, `monthly` or a five-field cron expression.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let cron = match text.trim() {
            "" | "never" | "none" => return Ok(Schedule::Never),
            "daily" => "0 0 * * *",
            "weekly" => "0 0 * * 1",
            "monthly" => "0 0 1 * *",
            other => other,
        };
        Cron::parse(cron).map(Schedule::Cron)
    }

    /// The start of the period holding `now_ms`: the last firing at or before it. `None` for
    /// [`Schedule::Never`] and for an expression that has not fired in the searched past.
    pub fn period_start(&self, now_ms: i64) -> Option<i64> {
        match self {
            Schedule::Never => None,
            Schedule::Cron(c) => c.last_at_or_before(now_ms),
        }
    }

    /// The first firing after `now_ms`, when the owner must look at the board again.
    pub fn next_reset(&self, now_ms: i64) -> Option<i64> {
        match self {
            Schedule::Never => None,
            Schedule::Cron(c) => c.first_after(now_ms),
        }
    }
}

fn field(spec: &str, lo: u32, hi: u32, why: &'static str) -> Result<u64, &'static str> {
    let mut bits = 0u64;
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| why)?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(why);
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().map_err(|_| why)?, b.parse().map_err(|_| why)?)
        } else {
            let a: u32 = range.parse().map_err(|_| why)?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(why);
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parses `minute hour day-of-month month day-of-week` (day-of-week 0-7, 0 and 7 Sunday).
    pub fn parse(text: &str) -> Result<Cron, ScheduleError> {
        let fail = |why| ScheduleError {
            text: text.to_owned(),
            why,
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [mi, h, dom, mon, dow] = parts[..] else {
            return Err(fail("expected five fields: minute hour day month weekday"));
        };
        let mut weekdays = field(dow, 0, 7, "bad day-of-week").map_err(fail)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            minutes: field(mi, 0, 59, "bad minute").map_err(fail)?,
            hours: field(h, 0, 23, "bad hour").map_err(fail)? as u32,
            days: field(dom, 1, 31, "bad day-of-month").map_err(fail)? as u32,
            months: field(mon, 1, 12, "bad month").map_err(fail)? as u16,
            weekdays: weekdays as u8,
            either_day: dom != "*" && dow != "*",
            text: text.to_owned(),
        })
    }

    fn day_matches(&self, c: &Civil) -> bool {
        let dom = self.days & (1 << c.day) != 0;
        let dow = self.weekdays & (1 << c.weekday) != 0;
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first firing strictly after `t`.
    fn first_after(&self, t: i64) -> Option<i64> {
        let mut m = t.div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
        for _ in 0..SEARCH_STEPS {
            let c = Civil::from_ms(m);
            let day_start = m - m.rem_euclid(DAY_MS);
            if self.months & (1 << c.month) == 0 {
                m = Civil::month_start(c.year, c.month + 1);
            } else if !self.day_matches(&c) {
                m = day_start + DAY_MS;
            } else if self.hours & (1 << c.hour) == 0 {
                m = day_start + i64::from(c.hour + 1) * 3_600_000;
            } else if self.minutes & (1 << c.minute) == 0 {
                m += MINUTE_MS;
            } else {
                return Some(m);
            }
        }
        None
    }

    /// The last firing at or before `t`.
    fn last_at_or_before(&self, t: i64) -> Option<i64> {
        let mut m = t.div_euclid(MINUTE_MS) * MINUTE_MS;
        for _ in 0..SEARCH_STEPS {
            let c = Civil::from_ms(m);
            let day_start = m - m.rem_euclid(DAY_MS);
            if self.months & (1 << c.month) == 0 {
                m = Civil::month_start(c.year, c.month) - MINUTE_MS;
            } else if !self.day_matches(&c) {
                m = day_start - MINUTE_MS;
            } else if self.hours & (1 << c.hour) == 0 {
                m = day_start + i64::from(c.hour) * 3_600_000 - MINUTE_MS;
            } else if self.minutes & (1 << c.minute) == 0 {
                m -= MINUTE_MS;
            } else {
                return Some(m);
            }
        }
        None
    }
}

/// A UTC calendar time (proleptic Gregorian), at minute resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day of the month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
    /// Second, 0-59.
    pub second: u32,
    /// Day of the week, 0 = Sunday.
    pub weekday: u32,
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Civil {
    /// The calendar time of unix milliseconds `ms`.
    pub fn from_ms(ms: i64) -> Civil {
        let days = ms.div_euclid(DAY_MS);
        let in_day = ms.rem_euclid(DAY_MS) / 1000;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (in_day / 3600) as u32,
            minute: (in_day / 60 % 60) as u32,
            second: (in_day % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// Unix milliseconds of the first instant of `month` (13 rolls into the next year).
    pub fn month_start(year: i64, month: u32) -> i64 {
        let (y, m) = if month > 12 {
            (year + 1, month - 12)
        } else {
            (year, month)
        };
        days_from_civil(y, m, 1) * DAY_MS
    }

    /// Unix milliseconds of a calendar time.
    pub fn to_ms(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * DAY_MS
            + i64::from(self.hour * 3600 + self.minute * 60 + self.second) * 1000
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, the timestamp shape asobi's leaderboard answers use.
    pub fn rfc3339(ms: i64) -> String {
        let c = Civil::from_ms(ms);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: 0,
            weekday: 0,
        }
        .to_ms()
    }

    #[test]
    fn calendar_round_trips_and_knows_weekdays() {
        assert_eq!(Civil::from_ms(0).weekday, 4); // 1970-01-01 was a Thursday
        assert_eq!(Civil::rfc3339(0), "1970-01-01T00:00:00Z");
        let t = at(2024, 2, 29, 13, 7) + 42_000;
        assert_eq!(Civil::rfc3339(t), "2024-02-29T13:07:42Z");
        assert_eq!(Civil::from_ms(t).to_ms(), t);
        assert_eq!(Civil::from_ms(at(2026, 11, 26, 0, 0)).weekday, 4);
        for day in (-800_000i64..800_000).step_by(997) {
            let ms = day * DAY_MS + 12_345_000;
            assert_eq!(Civil::from_ms(ms).to_ms(), ms);
        }
    }

    #[test]
    fn named_schedules_start_periods_where_expected() {
        let now = at(2026, 11, 26, 20, 15) + 5_000; // a Thursday
        let daily = Schedule::parse("daily").unwrap();
        assert_eq!(daily.period_start(now), Some(at(2026, 11, 26, 0, 0)));
        assert_eq!(daily.next_reset(now), Some(at(2026, 11, 27, 0, 0)));
        let weekly = Schedule::parse("weekly").unwrap();
        assert_eq!(weekly.period_start(now), Some(at(2026, 11, 23, 0, 0)));
        assert_eq!(weekly.next_reset(now), Some(at(2026, 11, 30, 0, 0)));
        let monthly = Schedule::parse("monthly").unwrap();
        assert_eq!(monthly.period_start(now), Some(at(2026, 11, 1, 0, 0)));
        assert_eq!(monthly.next_reset(now), Some(at(2026, 12, 1, 0, 0)));
        assert_eq!(
            monthly.next_reset(at(2026, 12, 15, 0, 0)),
            Some(at(2027, 1, 1, 0, 0))
        );
        // A firing instant starts its own period.
        assert_eq!(
            daily.period_start(at(2026, 11, 27, 0, 0)),
            Some(at(2026, 11, 27, 0, 0))
        );
        assert_eq!(Schedule::parse("never").unwrap().period_start(now), None);
    }

    #[test]
    fn cron_fields_steps_lists_and_either_day() {
        let every_6h = Schedule::parse("30 */6 * * *").unwrap();
        let t = at(2026, 3, 1, 7, 0);
        assert_eq!(every_6h.period_start(t), Some(at(2026, 3, 1, 6, 30)));
        assert_eq!(every_6h.next_reset(t), Some(at(2026, 3, 1, 12, 30)));
        // Fridays at 18:00 and weekends' Sundays (7 is Sunday too).
        let fri_sun = Schedule::parse("0 18 * * 5,7").unwrap();
        assert_eq!(
            fri_sun.next_reset(at(2026, 11, 26, 20, 0)),
            Some(at(2026, 11, 27, 18, 0))
        );
        assert_eq!(
            fri_sun.next_reset(at(2026, 11, 27, 18, 0)),
            Some(at(2026, 11, 29, 18, 0))
        );
        // Day 15 or any Monday: cron's either-day rule.
        let either = Schedule::parse("0 0 15 * 1").unwrap();
        assert_eq!(
            either.next_reset(at(2026, 11, 26, 0, 0)),
            Some(at(2026, 11, 30, 0, 0))
        );
        assert_eq!(
            either.next_reset(at(2026, 12, 14, 0, 0)),
            Some(at(2026, 12, 15, 0, 0))
        );
        // Leap day only.
        let leap = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_reset(at(2026, 11, 26, 0, 0)),
            Some(at(2028, 2, 29, 0, 0))
        );
        assert_eq!(
            leap.period_start(at(2026, 11, 26, 0, 0)),
            Some(at(2024, 2, 29, 0, 0))
        );
        // Never fires.
        let never = Schedule::parse("0 0 31 2 *").unwrap();
        assert_eq!(never.next_reset(0), None);
    }

    #[test]
    fn bad_expressions_are_rejected() {
        for bad in [
            "hourly",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "x * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    /// A simulated clock walked minute by minute over a year: the period start only ever moves
    /// at firings, always equals the previous `next_reset`, and never exceeds now.
    #[test]
    fn periods_advance_exactly_at_firings_on_a_simulated_clock() {
        for text in ["daily", "weekly", "monthly", "15 3 * * 2-4"] {
            let s = Schedule::parse(text).unwrap();
            let mut now = at(2026, 1, 1, 0, 0) + 1;
            let mut period = s.period_start(now).unwrap();
            let mut next = s.next_reset(now).unwrap();
            let end = at(2027, 1, 1, 0, 0);
            let mut resets = 0;
            while now < end {
                now += 7 * MINUTE_MS;
                let p = s.period_start(now).unwrap();
                assert!(p <= now);
                if p != period {
                    assert_eq!(p, next, "{text}: a period starts at the announced reset");
                    resets += 1;
                    period = p;
                    next = s.next_reset(now).unwrap();
                }
            }
            let expected = match text {
                "daily" => 365,
                "weekly" => 52,
                "monthly" => 12,
                _ => 156,
            };
            assert!(
                (expected - 1..=expected + 1).contains(&resets),
                "{text}: {resets}"
            );
        }
    }
}
