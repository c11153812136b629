//! `boltfleet operator issue|list|revoke`, `boltfleet policy set` and `boltfleet whoami`:
//! operators' roles and scopes, and the two-person rule.

use std::path::Path;

use boltfleet_common::files::write_atomic;
use boltfleet_common::identity::Identity;
use boltfleet_common::pki::new_csr;
use boltfleet_common::proto::{
    IssueOperatorCertRequest, ListOperatorsRequest, RevokeOperatorRequest, SetPolicyRequest,
    WhoAmIRequest,
};

use super::args::{Format, OperatorCommand, OperatorIssueArgs, PolicyCommand};
use super::client::{call, connect};
use super::config::Connection;
use super::error::CliError;
use super::render::table;
use super::rows::rfc3339;
use super::{write_output, write_stdout};

pub async fn run(conn: &Connection, command: OperatorCommand) -> Result<(), CliError> {
    match command {
        OperatorCommand::Issue(args) => issue(conn, args).await,
        OperatorCommand::List { format } => list(conn, format).await,
        OperatorCommand::Revoke { name } => {
            let mut admin = connect(conn).await?;
            let request = RevokeOperatorRequest { name: name.clone() };
            call(
                &format!("revoke operator {name}"),
                admin.revoke_operator(request),
            )
            .await?;
            eprintln!("operator {name} revoked: every certificate issued so far is refused");
            Ok(())
        }
    }
}

fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CliError + 'a {
    move |source| CliError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    }
}

async fn issue(conn: &Connection, args: OperatorIssueArgs) -> Result<(), CliError> {
    if args.role != "admin" && args.tenants.is_empty() && !args.all_tenants {
        return Err(CliError::Usage(format!(
            "a {} needs --tenant T (repeatable) or --all-tenants",
            args.role
        )));
    }
    let identity = Identity::operator(&args.name).map_err(|e| CliError::Usage(e.to_string()))?;
    let (csr_pem, key_pem) = match &args.csr {
        Some(path) => (
            std::fs::read_to_string(path).map_err(io_error("certificate request", path))?,
            None,
        ),
        None => {
            let (csr, key) = new_csr(&identity).map_err(|e| CliError::Settings(e.to_string()))?;
            (csr, Some(key))
        }
    };
    let request = IssueOperatorCertRequest {
        name: args.name.clone(),
        role: args.role.clone(),
        tenants: args.tenants.clone(),
        csr_pem,
    };
    let mut admin = connect(conn).await?;
    let action = format!("issue a certificate for operator {}", args.name);
    let issued = call(&action, admin.issue_operator_cert(request)).await?;
    let (Some(out), Some(key)) = (&args.out, key_pem) else {
        return write_stdout(&issued.certificate_pem);
    };
    std::fs::create_dir_all(out).map_err(io_error("output directory", out))?;
    let files = [
        (out.join("ca.crt"), issued.ca_pem, 0o644),
        (
            out.join(format!("{}.crt", args.name)),
            issued.certificate_pem,
            0o644,
        ),
        (out.join(format!("{}.key", args.name)), key, 0o600),
    ];
    for (path, text, mode) in &files {
        write_atomic(path, text.as_bytes(), *mode).map_err(CliError::Output)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

async fn list(conn: &Connection, format: Format) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    let operators = call(
        "list operators",
        admin.list_operators(ListOperatorsRequest {}),
    )
    .await?
    .operators;
    let rows: Vec<serde_json::Value> = operators
        .iter()
        .flat_map(|o| {
            o.certs.iter().map(move |c| {
                serde_json::json!({
                    "name": o.name, "serial": c.serial, "role": c.role, "tenants": c.tenants,
                    "since": rfc3339(c.since), "not_after": rfc3339(c.not_after),
                    "issued_by": (!c.issued_by.is_empty()).then_some(&c.issued_by),
                    "revoked": c.revoked,
                })
            })
        })
        .collect();
    let text = match format {
        Format::Json => {
            serde_json::to_string_pretty(&serde_json::json!({ "operators": rows })).expect("json")
                + "\n"
        }
        Format::Table | Format::Csv => {
            let cell = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) if a.is_empty() => "all".into(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                serde_json::Value::Null => "-".into(),
                other => other.to_string(),
            };
            let keys = [
                "name",
                "role",
                "tenants",
                "serial",
                "since",
                "not_after",
                "issued_by",
                "revoked",
            ];
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| keys.iter().map(|k| cell(&r[*k])).collect())
                .collect();
            let headers = [
                "NAME",
                "ROLE",
                "TENANTS",
                "SERIAL",
                "SINCE",
                "EXPIRES",
                "ISSUED BY",
                "REVOKED",
            ];
            table(&headers, &cells)
        }
    };
    write_output(format, &text)
}

pub async fn policy(conn: &Connection, command: PolicyCommand) -> Result<(), CliError> {
    let PolicyCommand::Set {
        tenant,
        require_approval,
        no_require_approval,
    } = command;
    if require_approval == no_require_approval {
        return Err(CliError::Usage(
            "give --require-approval or --no-require-approval".into(),
        ));
    }
    let mut admin = connect(conn).await?;
    let request = SetPolicyRequest {
        tenant: tenant.clone(),
        require_approval,
    };
    call(
        &format!("set the policy of tenant {tenant}"),
        admin.set_policy(request),
    )
    .await?;
    if require_approval {
        eprintln!("tenant {tenant}: rollouts wait for a second operator's approval");
    } else {
        eprintln!("tenant {tenant}: rollouts start without approval");
    }
    Ok(())
}

pub async fn whoami(conn: &Connection) -> Result<(), CliError> {
    let mut admin = connect(conn).await?;
    let me = call("ask who we are", admin.who_am_i(WhoAmIRequest {})).await?;
    let tenants = if me.tenants.is_empty() {
        "all tenants".to_string()
    } else {
        format!("tenants {}", me.tenants.join(", "))
    };
    super::write_output(
        Format::Table,
        &format!("operator {} ({} of {tenants})\n", me.name, me.role),
    )
}
