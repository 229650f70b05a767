//! How the matchmaker grouped a match's players: the teams it dealt them to (in a mode that
//! declares `teams`) and the parties that queued together. The match hands both to the script
//! in `init(config)` and tells clients their teams in `match.matched`.
//!
//! asobi has neither parties nor teams, so the shape is ours: Lua gets lists (the natural
//! shape for `ipairs`; team `k` is `config.teams[k]`), while pushes use the map player → team
//! index (0-based) that `party.matched` already carries, so a client parses one shape.

use serde_json::{Map, Value};

use asobi_rules::matchmaker::FormedGroup;

/// A formed match's teams and parties.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Lineup {
    /// Players per team, in team order; empty in a mode without teams.
    pub(crate) teams: Vec<Vec<String>>,
    /// Members of each ticket that seated more than one player (leader first).
    pub(crate) parties: Vec<Vec<String>>,
}

impl Lineup {
    /// The lineup of `group` in a mode with `teams` teams (1 = no teams).
    pub(crate) fn of(group: &FormedGroup, teams: usize) -> Lineup {
        let mut by_team: Vec<Vec<String>> = if teams >= 2 {
            vec![Vec::new(); teams]
        } else {
            Vec::new()
        };
        for t in &group.tickets {
            if let Some(team) = by_team.get_mut(t.team) {
                team.extend(t.members.iter().cloned());
            }
        }
        Lineup {
            teams: by_team,
            parties: group
                .tickets
                .iter()
                .filter(|t| t.members.len() > 1)
                .map(|t| t.members.clone())
                .collect(),
        }
    }

    /// Adds `teams` and `parties` to the config `init` receives.
    pub(crate) fn add_to_config(&self, config: &mut Value) {
        let Value::Object(c) = config else { return };
        if !self.teams.is_empty() {
            c.insert("teams".into(), lists(&self.teams));
        }
        c.insert("parties".into(), lists(&self.parties));
    }

    /// `{player_id: team index}` for `match.matched`; `None` in a mode without teams.
    pub(crate) fn team_map(&self) -> Option<Value> {
        if self.teams.is_empty() {
            return None;
        }
        let mut m = Map::new();
        for (i, team) in self.teams.iter().enumerate() {
            for p in team {
                m.insert(p.clone(), Value::from(i));
            }
        }
        Some(Value::Object(m))
    }
}

fn lists(groups: &[Vec<String>]) -> Value {
    Value::Array(
        groups
            .iter()
            .map(|g| Value::Array(g.iter().cloned().map(Value::String).collect()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use asobi_rules::matchmaker::FormedTicket;
    use serde_json::json;

    use super::*;

    fn ticket(members: &[&str], team: usize) -> FormedTicket {
        FormedTicket {
            ticket_id: format!("t-{}", members[0]),
            player_id: members[0].into(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            team,
            properties: json!({}),
            waited: Duration::ZERO,
        }
    }

    #[test]
    fn a_party_lands_in_one_team_list_and_in_parties() {
        let g = FormedGroup {
            mode: "squad".into(),
            tickets: vec![ticket(&["a", "b"], 1), ticket(&["c"], 0), ticket(&["d"], 0)],
        };
        let l = Lineup::of(&g, 2);
        assert_eq!(l.teams, vec![vec!["c", "d"], vec!["a", "b"]]);
        assert_eq!(l.parties, vec![vec!["a", "b"]]);
        let mut config = json!({"match_id": "m"});
        l.add_to_config(&mut config);
        assert_eq!(config["teams"], json!([["c", "d"], ["a", "b"]]));
        assert_eq!(config["parties"], json!([["a", "b"]]));
        assert_eq!(l.team_map(), Some(json!({"a": 1, "b": 1, "c": 0, "d": 0})));
    }

    #[test]
    fn a_mode_without_teams_gets_parties_only() {
        let g = FormedGroup {
            mode: "duel".into(),
            tickets: vec![ticket(&["a"], 0), ticket(&["b"], 0)],
        };
        let l = Lineup::of(&g, 1);
        let mut config = json!({});
        l.add_to_config(&mut config);
        assert_eq!(config, json!({"parties": []}));
        assert_eq!(l.team_map(), None);
    }
}
