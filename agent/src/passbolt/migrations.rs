//! passbolt's migration status: the command of each layout and the parsers of its output
//! (v1 `Migrations.migration status`, v2+ JSON).

use boltfleet_common::proto::MigrationSection;

use super::version_file::Layout;

/// The section of v1 output that decides whether the database is behind the code.
pub const APPLICATION: &str = "Application";

/// Parsed migration status: one row per section and whether migrations are pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub sections: Vec<MigrationSection>,
    pub pending: bool,
}

/// Output that is not the status listing it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationParseError {
    #[error("no {APPLICATION:?} section in the migration status output")]
    NoApplicationSection,
    #[error("section {section:?} lacks its {field} version{}", hint(.unexpected))]
    Incomplete {
        section: String,
        field: &'static str,
        /// The first line of the section that was not understood, which usually says why.
        unexpected: Option<String>,
    },
    #[error("no JSON migration list in the output")]
    NoJson,
    #[error("invalid JSON migration list: {0}")]
    Json(String),
}

fn hint(unexpected: &Option<String>) -> String {
    match unexpected {
        Some(line) => format!(" (it says {line:?})"),
        None => String::new(),
    }
}

#[derive(Clone, Copy)]
enum Field {
    Current,
    Latest,
}

/// A v1 section as it is being read: `None` until its line was seen, `Some("")` for
/// `None applied.`.
struct Partial {
    name: String,
    current: Option<String>,
    latest: Option<String>,
    unexpected: Option<String>,
}

impl Partial {
    fn finish(self) -> Result<MigrationSection, MigrationParseError> {
        let missing = |field| MigrationParseError::Incomplete {
            section: self.name.clone(),
            field,
            unexpected: self.unexpected.clone(),
        };
        let current = self.current.clone().ok_or_else(|| missing("current"))?;
        let latest = self.latest.clone().ok_or_else(|| missing("latest"))?;
        Ok(MigrationSection {
            name: self.name,
            current,
            latest,
        })
    }
}

/// Parses v1 `./app/Console/cake Migrations.migration status`. Sections open after a dashed
/// rule with their name, then `Current version:` / `Latest version:` each followed by
/// `#<id> <name>` or `None applied.`. Other lines (title, PHP notices) are ignored, but a
/// section missing a version is an error quoting the first of them. Pending when the `Application` section's current differs from its latest.
pub fn parse_v1_status(output: &str) -> Result<MigrationStatus, MigrationParseError> {
    let mut sections = Vec::new();
    let mut current: Option<Partial> = None;
    let mut after_rule = false;
    let mut field: Option<Field> = None;
    for raw in output.lines() {
        let line = raw.trim();
        if line.len() >= 3 && line.chars().all(|c| c == '-') {
            sections.extend(current.take().map(Partial::finish).transpose()?);
            after_rule = true;
            field = None;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if after_rule {
            after_rule = false;
            current = Some(Partial {
                name: line.to_string(),
                current: None,
                latest: None,
                unexpected: None,
            });
            continue;
        }
        let Some(section) = current.as_mut() else {
            continue;
        };
        match (line, field) {
            ("Current version:", _) => field = Some(Field::Current),
            ("Latest version:", _) => field = Some(Field::Latest),
            (value, Some(f)) if value.starts_with('#') || value == "None applied." => {
                let value = if value.starts_with('#') { value } else { "" };
                match f {
                    Field::Current => section.current = Some(value.to_string()),
                    Field::Latest => section.latest = Some(value.to_string()),
                }
                field = None;
            }
            // PHP notices and the like; an incomplete section reports the first one.
            _ => {
                section.unexpected.get_or_insert_with(|| line.to_string());
            }
        }
    }
    sections.extend(current.take().map(Partial::finish).transpose()?);
    let app = sections
        .iter()
        .find(|s| s.name == APPLICATION)
        .ok_or(MigrationParseError::NoApplicationSection)?;
    let pending = app.current != app.latest;
    Ok(MigrationStatus { sections, pending })
}

/// The migration status command of a layout, as program and arguments (run in the root).
pub fn status_command(layout: Layout) -> (&'static str, &'static [&'static str]) {
    match layout {
        Layout::V1 => ("./app/Console/cake", &["Migrations.migration", "status"]),
        Layout::Modern => ("./bin/cake", &["migrations", "status", "-f", "json"]),
    }
}

/// Parses the stdout of `layout`'s [`status_command`].
pub fn parse_status(layout: Layout, output: &str) -> Result<MigrationStatus, MigrationParseError> {
    match layout {
        Layout::V1 => parse_v1_status(output),
        Layout::Modern => parse_json_status(output),
    }
}

#[derive(serde::Deserialize)]
struct JsonMigration {
    status: String,
    id: u64,
    #[serde(default)]
    name: Option<String>,
}

/// Parses v2+ `./bin/cake migrations status -f json`: informational lines, then a JSON list of
/// `{"status":"up|down","id":..,"name":..}`. Reported as one `Application` section whose current
/// is the newest applied migration and latest the newest known one; pending when any is down.
pub fn parse_json_status(output: &str) -> Result<MigrationStatus, MigrationParseError> {
    let start = output
        .lines()
        .position(|l| l.trim_start().starts_with('['))
        .ok_or(MigrationParseError::NoJson)?;
    let json: String = output.lines().skip(start).collect::<Vec<_>>().join("\n");
    let mut stream = serde_json::Deserializer::from_str(&json).into_iter::<Vec<JsonMigration>>();
    let list = stream
        .next()
        .ok_or(MigrationParseError::NoJson)?
        .map_err(|e| MigrationParseError::Json(e.to_string()))?;
    let label = |m: &JsonMigration| match &m.name {
        Some(name) => format!("#{} {}", m.id, name),
        None => format!("#{}", m.id),
    };
    let newest = |up_only: bool| {
        list.iter()
            .filter(|m| !up_only || m.status == "up")
            .max_by_key(|m| m.id)
            .map(label)
            .unwrap_or_default()
    };
    if let Some(bad) = list.iter().find(|m| m.status != "up" && m.status != "down") {
        return Err(MigrationParseError::Json(format!(
            "unknown status {:?} for migration {}",
            bad.status, bad.id
        )));
    }
    let section = MigrationSection {
        name: APPLICATION.to_string(),
        current: newest(true),
        latest: newest(false),
    };
    let pending = list.iter().any(|m| m.status == "down");
    Ok(MigrationStatus {
        sections: vec![section],
        pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, current: &str, latest: &str) -> MigrationSection {
        MigrationSection {
            name: name.into(),
            current: current.into(),
            latest: latest.into(),
        }
    }

    const PLUGIN_003: &str = "#003 003_increase_class_name_length";
    const M110: &str = "#1465367816 1465367816_Migration_1.1.0";
    const M130: &str = "#1479926461 1479926461_Migration_1.3.0";
    const M161: &str = "#1498311597 1498311597_Migration_1.6.1";

    #[test]
    fn v1_samples() {
        let cases: [(&str, &str, &str, bool); 7] = [
            (
                include_str!("testdata/captured_v1_status_pending_at_v1.3.2.txt"),
                M110,
                M130,
                true,
            ),
            (
                include_str!("testdata/captured_v1_status_pending_at_v1.6.10.txt"),
                M130,
                M161,
                true,
            ),
            (
                include_str!("testdata/captured_v1_status_uptodate_v1.1.0.txt"),
                M110,
                M110,
                false,
            ),
            (
                include_str!("testdata/captured_v1_status_uptodate_v1.3.2.txt"),
                M130,
                M130,
                false,
            ),
            (
                include_str!("testdata/v1_migration_status_pending.txt"),
                M110,
                M130,
                true,
            ),
            (
                include_str!("testdata/v1_migration_status_uptodate_1.6.10.txt"),
                M161,
                M161,
                false,
            ),
            (
                include_str!("testdata/v1_migration_status_none_applied.txt"),
                "",
                M161,
                true,
            ),
        ];
        for (i, (text, current, latest, pending)) in cases.into_iter().enumerate() {
            let status = parse_v1_status(text).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(status.pending, pending, "case {i}");
            assert_eq!(
                status.sections[0],
                section(APPLICATION, current, latest),
                "case {i}"
            );
            if i < 6 {
                assert_eq!(status.sections.len(), 2, "case {i}");
                assert_eq!(
                    status.sections[1],
                    section("Migrations Plugin", PLUGIN_003, PLUGIN_003),
                    "case {i}"
                );
            } else {
                assert_eq!(status.sections.len(), 1);
            }
        }
    }

    #[test]
    fn v1_tolerates_noise_before_the_listing() {
        let text = format!(
            "PHP Deprecated:  something in Unknown on line 0\n{}",
            include_str!("testdata/v1_migration_status_pending.txt")
        );
        assert!(parse_v1_status(&text).unwrap().pending);
        let inside = include_str!("testdata/v1_migration_status_uptodate_1.6.10.txt").replace(
            "Latest version:\n",
            "PHP Notice:  Undefined index: x in Shell.php on line 9\nLatest version:\n",
        );
        let status = parse_v1_status(&inside).unwrap();
        assert!(!status.pending);
        assert_eq!(status.sections[0].latest, M161);
    }

    #[test]
    fn v1_errors() {
        assert_eq!(
            parse_v1_status(""),
            Err(MigrationParseError::NoApplicationSection)
        );
        let php_fatal =
            "PHP Fatal error:  Uncaught Error: Call to undefined function mysql_connect()";
        assert_eq!(
            parse_v1_status(php_fatal),
            Err(MigrationParseError::NoApplicationSection)
        );
        let plugin_only = "---\nMigrations Plugin\n\nCurrent version:\n  #003 x\nLatest version:\n  #003 x\n---\n";
        assert_eq!(
            parse_v1_status(plugin_only),
            Err(MigrationParseError::NoApplicationSection)
        );
        let cut = "Cake Migration Shell\n---\nApplication\n\nCurrent version:\n  #1 a\n";
        assert!(matches!(
            parse_v1_status(cut),
            Err(MigrationParseError::Incomplete {
                field: "latest",
                ..
            })
        ));
        let error = "---\nApplication\n\nError: SQLSTATE[HY000] [2002] Connection refused\n";
        let err = parse_v1_status(error).unwrap_err();
        assert!(matches!(
            err,
            MigrationParseError::Incomplete {
                field: "current",
                ..
            }
        ));
        assert!(err.to_string().contains("Connection refused"), "{err}");
    }

    #[test]
    fn json_sample_with_leading_lines() {
        let status =
            parse_json_status(include_str!("testdata/v4_migrations_status_json.txt")).unwrap();
        assert!(status.pending);
        assert_eq!(
            status.sections,
            vec![section(
                APPLICATION,
                "#20231115235026 V441DropUserAgents",
                "#20241125081300 V4101ReAddV5ResourceTypes"
            )]
        );
    }

    #[test]
    fn json_up_to_date_and_empty() {
        let text = r#"[{"status":"up","id":2,"name":"B"},{"status":"up","id":1,"name":"A"}]"#;
        let status = parse_json_status(text).unwrap();
        assert!(!status.pending);
        assert_eq!(status.sections, vec![section(APPLICATION, "#2 B", "#2 B")]);
        let status = parse_json_status("using format json\n[]\n").unwrap();
        assert!(!status.pending);
        assert_eq!(status.sections, vec![section(APPLICATION, "", "")]);
    }

    #[test]
    fn json_errors() {
        assert_eq!(parse_json_status(""), Err(MigrationParseError::NoJson));
        let text = include_str!("testdata/v1_migration_status_pending.txt");
        assert_eq!(parse_json_status(text), Err(MigrationParseError::NoJson));
        assert!(matches!(
            parse_json_status("[{\"status\":"),
            Err(MigrationParseError::Json(_))
        ));
        let odd = r#"[{"status":"sideways","id":1}]"#;
        assert!(matches!(
            parse_json_status(odd),
            Err(MigrationParseError::Json(_))
        ));
    }
}
