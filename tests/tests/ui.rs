//! End to end, the web dashboard in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) against `boltfleet ui` and a real controller with real fixture
//! agents and raw hostile ones. Every page loads and shows the right hosts and versions, a
//! rollout's page follows it live, pause and resume from the buttons steer it, a viewer gets
//! no buttons, a hostile host's text stays text, a page of another origin cannot make the
//! dashboard act, and requests without token, cookie or CSRF token are refused.
//!
//! One browser (one chromedriver) and one fleet for the whole file, in one test: a fixture
//! update takes seconds, and CI's budget is shared. Screenshots at 1280x800 of each page go to
//! `target/ui-screenshots/`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use boltfleet_common::proto::{Health, Inventory};
use boltfleet_common::tls;
use boltfleet_tests::cluster::{eventually, row, Controller};
use boltfleet_tests::dashboard::{Dashboard, OperatorFiles};
use boltfleet_tests::fixture::PassboltHost;
use boltfleet_tests::raw_agent::{enrolled, inventory, report_once, Stream};
use boltfleet_tests::rollouts::{status, wait_status};
use boltfleet_tests::site::Site;
use serde_json::{json, Value};

#[path = "ui/browser.rs"]
mod browser;
#[path = "ui/http.rs"]
mod http;

use browser::Browser;
use http::{http, refused};

const WAIT: Duration = Duration::from_secs(120);

/// What the hostile host reports: markup, an event handler and terminal escapes.
const SCRIPT: &str = "<script>window.__pwned = 'script'</script>disk check failed";
const IMG: &str = "<img src=x onerror=\"window.__pwned = 'img'\">";
const ANSI: &str = "\x1b[2J\x1b]0;owned\x07 clear screen";
const REASON: &str = "<b onmouseover=\"window.__pwned = 'b'\">healthcheck</b> failed";

// ---- the fleet ----------------------------------------------------------------------------

/// Raw agents' streams (their hosts stay online while these live).
struct RawHosts {
    _streams: Vec<Stream>,
}

/// `evil-1` (tenant evil) reports hostile text; `stuck-1` (tenant lab) is healthy on 1.6.9
/// and never answers a job, so a rollout of it stays running.
async fn raw_hosts(ctl: &Controller) -> Result<RawHosts> {
    let evil = enrolled(ctl, "evil-1", "evil").await?;
    let hostile = Inventory {
        errors: vec![SCRIPT.into(), IMG.into(), ANSI.into()],
        health: Some(Health {
            healthy: false,
            reasons: vec![REASON.into()],
            ..Health::default()
        }),
        ..inventory("1.6.9", "v1.6.9")
    };
    let stuck = enrolled(ctl, "stuck-1", "lab").await?;
    let streams = vec![
        report_once(ctl, &evil, hostile).await?,
        report_once(ctl, &stuck, inventory("1.6.9", "v1.6.10")).await?,
    ];
    Ok(RawHosts { _streams: streams })
}

const REAL: [(&str, &str); 3] = [
    ("acme-web1", "acme"),
    ("acme-web2", "acme"),
    ("globex-web1", "globex"),
];

#[test]
fn the_dashboard_in_a_real_browser() -> Result<()> {
    tls::install_crypto_provider();
    let base = tempfile::tempdir()?;
    let ctl = Controller::start(base.path())?;
    let mut sites = Vec::new();
    for (id, tenant) in REAL {
        let mut site = Site::create(base.path(), &ctl, id, PassboltHost::builder("1.3.2"), false)?;
        site.enroll_and_start(&ctl, id, tenant)?;
        sites.push(site);
    }
    let rt = tokio::runtime::Runtime::new()?;
    let _raw = rt.block_on(raw_hosts(&ctl))?;
    eventually("every host's first report", WAIT, || {
        let report = ctl.report().ok()?;
        REAL.iter()
            .all(|(id, _)| {
                row(&report, id).is_some_and(|r| r["online"] == true && r["version"] == "1.3.2")
            })
            .then_some(())
    })?;
    // What `update` is measured against, set by an operator.
    ctl.cli_ok(&["release", "latest", "1.6.10"])?;
    let viewer = OperatorFiles::issue(&ctl, "vera", "viewer")?;
    let admin_ui = Dashboard::start(&ctl, &OperatorFiles::alice(&ctl), base.path())?;
    let viewer_ui = Dashboard::start(&ctl, &viewer, base.path())?;

    rt.block_on(async {
        let browser = Browser::start(base.path()).await?;
        let result = async {
            login(&browser, &admin_ui).await?;
            fleet_and_hosts(&browser, &admin_ui).await?;
            hostile_text_stays_text(&browser, &admin_ui).await?;
            plan_page(&browser, &admin_ui).await?;
            live_rollout_with_pause_and_resume(&browser, &admin_ui, &ctl).await?;
            let stuck = stuck_rollout(&ctl)?;
            a_viewer_sees_no_buttons(&browser, &admin_ui, &viewer_ui, &stuck).await?;
            another_origin_cannot_act(&browser, &admin_ui, &ctl, &stuck).await?;
            anyhow::Ok(())
        }
        .await;
        let _ = browser.client.clone().close().await;
        result
    })?;
    requests_without_token_cookie_or_csrf_are_refused(&admin_ui, &ctl)?;
    Ok(())
}

/// The printed address logs in and leaves the address bar without its token.
async fn login(b: &Browser, dash: &Dashboard) -> Result<()> {
    b.client.goto(&dash.login_url).await?;
    b.wait_js(
        "the fleet page after logging in",
        "return document.querySelector('#main').dataset.ready",
        |v| v == "fleet",
    )
    .await?;
    let url = b.client.current_url().await?;
    ensure!(
        !url.as_str().contains("token"),
        "the token stays in the address bar: {url}"
    );
    let cookies = b.js("return document.cookie").await?;
    ensure!(cookies == "", "the session cookie is HttpOnly: {cookies}");
    Ok(())
}

async fn fleet_and_hosts(b: &Browser, dash: &Dashboard) -> Result<()> {
    b.page(dash, "fleet").await?;
    let count =
        |key: &str| format!("return document.querySelector('[data-count={key}] .n').textContent");
    ensure!(b.js(&count("hosts")).await? == "5", "five hosts");
    // Against 1.6.10: the three 1.3.2 hosts are a minor behind, the two on 1.6.9 a patch.
    ensure!(b.js(&count("minor")).await? == "3");
    ensure!(b.js(&count("patch")).await? == "2");
    ensure!(b.js(&count("unhealthy")).await? == "1", "evil-1");
    ensure!(b.texts("#latest").await? == ["1.6.10"]);
    let sub = b.texts("p.sub").await?;
    ensure!(
        sub[0].contains("operator"),
        "where latest comes from: {sub:?}"
    );
    let total = |v: &str| {
        format!("return document.querySelector('#versions-table tr[data-version=\"{v}\"] .total').textContent")
    };
    ensure!(b.js(&total("1.3.2")).await? == "3");
    ensure!(b.js(&total("1.6.9")).await? == "2");
    let bars = b
        .js("return Chart.getChart('versions-chart').data.datasets.map(d => d.label).sort()")
        .await?;
    ensure!(
        bars == json!(["acme", "evil", "globex", "lab"]),
        "one series per tenant: {bars}"
    );
    b.shot("fleet").await?;

    b.page(dash, "hosts").await?;
    let ids = b.texts("#hosts-table tbody tr td:first-child").await?;
    ensure!(
        ids == ["acme-web1", "acme-web2", "evil-1", "globex-web1", "stuck-1"],
        "{ids:?}"
    );
    b.shot("hosts").await?;
    b.page(dash, "hosts?tenant=globex").await?;
    ensure!(b.texts("#hosts-table tbody tr td:first-child").await? == ["globex-web1"]);
    // Sorting by version from its header, newest first the second time.
    b.page(dash, "hosts").await?;
    b.click("th[data-sort=version]").await?;
    b.rendered("hosts?sort=version&dir=asc").await?;
    b.click("th[data-sort=version]").await?;
    b.rendered("hosts?sort=version&dir=desc").await?;
    let versions = b.js("return Array.from(document.querySelectorAll('#hosts-table td.version')).map(e => e.textContent)").await?;
    ensure!(
        versions == json!(["1.6.9", "1.6.9", "1.3.2", "1.3.2", "1.3.2"]),
        "{versions}"
    );
    Ok(())
}

async fn hostile_text_stays_text(b: &Browser, dash: &Dashboard) -> Result<()> {
    b.page(dash, "host/evil-1").await?;
    let errors = b.texts("#host-errors li").await?;
    ensure!(errors.len() == 3, "{errors:?}");
    ensure!(
        errors[0] == SCRIPT && errors[1] == IMG,
        "shown as written: {errors:?}"
    );
    // The controller escaped the control characters; what is left shows as text.
    ensure!(
        errors[2].contains("[2J") && errors[2].contains("owned"),
        "{errors:?}"
    );
    ensure!(!errors[2].contains('\x1b'), "{errors:?}");
    ensure!(b.texts("#host-reasons li").await? == [REASON]);
    let injected = b
        .js("return document.querySelectorAll('#main script, #main img, #main b').length")
        .await?;
    ensure!(injected == 0, "{injected} elements made of a host's text");
    b.page(dash, "hosts?q=evil").await?;
    ensure!(b.texts("#hosts-table tbody tr td:first-child").await? == ["evil-1"]);
    ensure!(b.texts("#hosts-table .reasons").await?[0].contains("<script>"));
    let pwned = b.js("return window.__pwned === undefined").await?;
    ensure!(pwned == true, "a host's text ran as script");
    Ok(())
}

async fn plan_page(b: &Browser, dash: &Dashboard) -> Result<()> {
    b.page(dash, "plan").await?;
    b.js("document.querySelector('#plan-target').value = '1.4.0'; document.querySelector('#plan-select_all').checked = true").await?;
    b.click("#plan-run").await?;
    b.wait_js(
        "the plan",
        "return document.querySelector('#plan-result').dataset.done",
        |v| v == "1",
    )
    .await?;
    let planned = b
        .texts("#plan-result section tr[data-host] td:first-child")
        .await?;
    ensure!(planned.len() == 3, "{planned:?}");
    for (id, _) in REAL {
        ensure!(planned.iter().any(|p| p == id), "{id} planned: {planned:?}");
    }
    let skipped = b.texts("#plan-skipped tbody tr").await?;
    ensure!(skipped.len() == 2, "{skipped:?}");
    // Both raw hosts are on 1.6.9: the plan says why, in words.
    for host in ["evil-1", "stuck-1"] {
        ensure!(
            skipped
                .iter()
                .any(|s| s.starts_with(host) && s.contains("downgrade refused")),
            "{skipped:?}"
        );
    }
    b.shot("plan").await?;
    // A bad spec: the controller's refusal, naming the field, shown as text.
    b.js("document.querySelector('#plan-target').value = 'v1'")
        .await?;
    b.click("#plan-run").await?;
    b.wait_js("the refusal", "return document.querySelector('#plan-result .error') && document.querySelector('#plan-result .error').textContent", |v| v.as_str().is_some_and(|t| t.contains("target"))).await?;
    Ok(())
}

/// The states the rollout page shows, host by host.
const STATES: &str = "return Object.fromEntries(Array.from(document.querySelectorAll('.wave-hosts tr[data-host]')).map(r => [r.dataset.host, r.querySelector('.state').textContent]))";

async fn live_rollout_with_pause_and_resume(
    b: &Browser,
    dash: &Dashboard,
    ctl: &Controller,
) -> Result<()> {
    let mut args = vec![
        "rollout",
        "start",
        "--to",
        "1.4.0",
        "--waves",
        "1,100%",
        "--max-parallel",
        "1",
        "--max-failures",
        "0",
        "--soak",
        "2s",
    ];
    for (id, _) in REAL {
        args.extend(["--host", id]);
    }
    let id = ctl.cli_ok(&args)?.trim().to_string();
    b.page(dash, &format!("rollout/{id}")).await?;
    b.wait_js(
        "the stream to open",
        "return document.querySelector('#live').textContent",
        |v| v == "live",
    )
    .await?;
    b.js("window.__same_page = true").await?;
    let first = b.js(STATES).await?;
    let done = |v: &Value| {
        v.as_object()
            .is_some_and(|m| m.len() == 3 && m.values().all(|s| s == "succeeded"))
    };
    ensure!(
        !done(&first),
        "the rollout finished before the page could follow it: {first}"
    );

    // Pause from its button, with a reason: the controller's status says so, and the page.
    b.wait_js(
        "the pause button",
        "return !!document.querySelector('#action-pause')",
        |v| v == true,
    )
    .await?;
    b.click("#action-pause").await?;
    b.wait_js(
        "the confirmation",
        "return document.querySelector('#confirm').open",
        |v| v == true,
    )
    .await?;
    b.client
        .find(fantoccini::Locator::Id("confirm-reason"))
        .await?
        .send_keys("looking at the canary")
        .await?;
    b.click("#confirm-ok").await?;
    let paused = wait_status(ctl, &id, "the rollout paused", |s| s["state"] == "paused")?;
    ensure!(
        paused["reason"]
            .as_str()
            .unwrap_or("")
            .contains("looking at the canary"),
        "{paused}"
    );
    b.wait_js(
        "the page to show it paused",
        "return document.querySelector('#rollout').dataset.state",
        |v| v == "paused",
    )
    .await?;
    ensure!(b.js("return !!document.querySelector('#action-resume') && !document.querySelector('#action-pause')").await? == true);
    let audit: Value = serde_json::from_str(&ctl.cli_ok(&["audit", "--format", "json"])?)?;
    let by_alice = audit["entries"].as_array().into_iter().flatten().any(|e| {
        e["target"] == id.as_str()
            && e["actor"].as_str().unwrap_or("").contains("alice")
            && e["action"].as_str().unwrap_or("").contains("pause")
    });
    ensure!(
        by_alice,
        "the pause is audited with the operator's name: {audit}"
    );

    b.click("#action-resume").await?;
    b.wait_js(
        "the confirmation",
        "return document.querySelector('#confirm').open",
        |v| v == true,
    )
    .await?;
    b.click("#confirm-ok").await?;
    wait_status(ctl, &id, "the rollout resumed", |s| s["state"] != "paused")?;
    // The page follows by itself to the end: no reload (the marker survives).
    let last = b
        .wait_js("every host to succeed on the page", STATES, done)
        .await?;
    b.wait_js(
        "the page to show it completed",
        "return document.querySelector('#rollout').dataset.state",
        |v| v == "completed",
    )
    .await?;
    ensure!(
        b.js("return window.__same_page === true").await? == true,
        "the page was reloaded"
    );
    ensure!(
        b.js("return document.querySelector('#live').textContent")
            .await?
            == "final"
    );
    ensure!(
        b.js("return document.querySelectorAll('#rollout-actions button').length")
            .await?
            == 0,
        "no action on a completed rollout"
    );
    wait_status(ctl, &id, "the rollout completed", |s| {
        s["state"] == "completed"
    })?;
    println!("rollout page followed {first} to {last}");
    b.shot("rollout").await?;

    b.page(dash, "rollouts").await?;
    b.shot("rollouts").await?;
    let finished = b
        .texts("#rollouts-finished tr[data-rollout] td:first-child")
        .await?;
    ensure!(finished == [id.clone()], "{finished:?}");

    // The host's page: its new version and the job with every step.
    b.page(dash, "host/acme-web1").await?;
    ensure!(b.texts("#host-version").await? == ["1.4.0"]);
    b.js("document.querySelector('#job-history details').open = true")
        .await?;
    let steps = b
        .texts("#job-history details table tbody tr td:first-child")
        .await?;
    for step in [
        "preflight",
        "backup",
        "checkout",
        "migrate",
        "maintenance_off",
    ] {
        ensure!(steps.iter().any(|s| s == step), "step {step} in {steps:?}");
    }
    let summary = b.texts("#job-history details summary").await?;
    ensure!(
        summary[0].starts_with("update 1.4.0") && summary[0].contains("succeeded"),
        "{summary:?}"
    );
    b.shot("host").await?;
    // The same history from the CLI, newest first.
    let history: Value = serde_json::from_str(&ctl.cli_ok(&[
        "host",
        "history",
        "acme-web1",
        "--format",
        "json",
    ])?)?;
    ensure!(
        history["jobs"][0]["kind"] == "update" && history["jobs"][0]["state"] == "succeeded",
        "{history}"
    );
    ensure!(history["jobs"][0]["backup_id"].is_string(), "{history}");

    // The fleet page, loaded again until the hosts' reports after their updates are in.
    let total = "const c = document.querySelector('#versions-table tr[data-version=\"1.4.0\"] .total'); return c && c.textContent";
    let deadline = Instant::now() + WAIT;
    b.page(dash, "fleet").await?;
    loop {
        if b.js(total).await? == "3" {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the fleet page never counted the three updated hosts"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.client.refresh().await?;
        b.rendered("fleet").await?;
    }
}

/// A rollout of `stuck-1`, whose raw agent never answers: it stays running.
fn stuck_rollout(ctl: &Controller) -> Result<String> {
    let id = ctl
        .cli_ok(&[
            "rollout",
            "start",
            "--to",
            "1.6.10",
            "--host",
            "stuck-1",
            "--waves",
            "100%",
            "--max-parallel",
            "1",
            "--max-failures",
            "0",
            "--soak",
            "1s",
        ])?
        .trim()
        .to_string();
    wait_status(ctl, &id, "the stuck rollout to run", |s| {
        s["state"] == "running" && s["waves"][0]["hosts"][0]["state"] == "running"
    })?;
    Ok(id)
}

async fn a_viewer_sees_no_buttons(
    b: &Browser,
    admin: &Dashboard,
    viewer: &Dashboard,
    id: &str,
) -> Result<()> {
    // The same running rollout: the admin's page has its buttons...
    b.page(admin, &format!("rollout/{id}")).await?;
    let buttons = "return Array.from(document.querySelectorAll('#rollout button')).map(b => b.dataset.action)";
    ensure!(b.js(buttons).await? == json!(["pause", "abort"]), "admin");
    // ...the viewer's none (same browser, another dashboard: its own session).
    b.client.goto(&viewer.login_url).await?;
    b.wait_js(
        "the viewer's fleet page",
        "return document.querySelector('#main').dataset.ready",
        |v| v == "fleet",
    )
    .await?;
    ensure!(b.js("return document.body.dataset.role").await? == "viewer");
    b.page(viewer, &format!("rollout/{id}")).await?;
    ensure!(
        b.js("return document.querySelector('#rollout').dataset.state")
            .await?
            == "running"
    );
    ensure!(
        b.js(buttons).await? == json!([]),
        "a viewer sees no buttons"
    );
    b.shot("rollout-viewer").await?;
    Ok(())
}

/// Serves `page` to every request on a free port (another origin); returns its address.
fn attacker_site(page: String) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    Ok(addr)
}

async fn another_origin_cannot_act(
    b: &Browser,
    dash: &Dashboard,
    ctl: &Controller,
    id: &str,
) -> Result<()> {
    // Logged in to the admin's dashboard: the browser holds its session cookie, which it also
    // sends to a page on another port of the same host (same site).
    b.client.goto(&dash.login_url).await?;
    b.wait_js(
        "the admin's fleet page",
        "return document.querySelector('#main').dataset.ready",
        |v| v == "fleet",
    )
    .await?;
    let target = format!("{}/api/rollouts/{id}/pause", dash.origin);
    let page = format!(
        r#"<!doctype html><title>evil</title><body><form id="f" method="post" enctype="text/plain" action="{target}"><input name='{{"reason":"' value='evil"}}'></form>
<script>
(async () => {{
  const r = {{}};
  try {{ const a = await fetch("{target}", {{method: "POST", credentials: "include", headers: {{"Content-Type": "application/json"}}, body: "{{}}"}}); r.json = a.status; }} catch (e) {{ r.json = "blocked"; }}
  try {{ const a = await fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include", body: "{{}}"}}); r.nocors = a.type; }} catch (e) {{ r.nocors = "blocked"; }}
  try {{ const a = await fetch("{origin}/api/session", {{credentials: "include"}}); r.read = await a.text(); }} catch (e) {{ r.read = "blocked"; }}
  window.results = r;
  document.title = "done";
}})();
</script>"#,
        origin = dash.origin
    );
    let evil = attacker_site(page)?;
    b.client.goto(&format!("http://{evil}/")).await?;
    let results = b
        .wait_js(
            "the attacker's tries",
            "return document.title === 'done' ? window.results : null",
            |v| v.is_object(),
        )
        .await?;
    ensure!(
        results["json"] == "blocked",
        "a JSON POST from another origin is not even sent: {results}"
    );
    ensure!(
        results["read"] == "blocked",
        "another origin reads nothing: {results}"
    );
    // The form POST navigates to the dashboard's answer: a refusal.
    b.js("document.getElementById('f').submit()").await?;
    b.wait_js(
        "the dashboard's refusal",
        "return document.body ? document.body.innerText : ''",
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("cross-origin request refused"))
        },
    )
    .await?;
    let now = status(ctl, id)?;
    ensure!(
        now["state"] == "running",
        "the rollout is still running: {now}"
    );
    Ok(())
}

fn requests_without_token_cookie_or_csrf_are_refused(
    dash: &Dashboard,
    ctl: &Controller,
) -> Result<()> {
    let at = dash.authority();
    refused(&http(at, "GET", "/", &[], "")?, "no session")?;
    refused(&http(at, "GET", "/api/fleet", &[], "")?, "no session")?;
    refused(&http(at, "GET", "/?token=0000", &[], "")?, "wrong token")?;
    let rebinding = vec![format!(
        "Host: evil.example:{}",
        at.rsplit(':').next().unwrap_or("")
    )];
    refused(&http(at, "GET", "/", &rebinding, "")?, "not this dashboard")?;

    let path_query = dash.login_url.trim_start_matches(&dash.origin);
    let login = http(at, "GET", path_query, &[], "")?;
    ensure!(
        login.status == 303,
        "the token logs in: {} {}",
        login.status,
        login.headers
    );
    let cookie = login
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .context("a session cookie")?
        .to_string();
    ensure!(
        login.headers.contains("HttpOnly; SameSite=Strict"),
        "{}",
        login.headers
    );
    let with_cookie = vec![format!("Cookie: {cookie}")];
    let session = http(at, "GET", "/api/session", &with_cookie, "")?;
    ensure!(session.status == 200, "{}", session.body);
    let csrf = serde_json::from_str::<Value>(&session.body)?["csrf"]
        .as_str()
        .context("the CSRF token")?
        .to_string();

    let stuck = ctl.cli_ok(&["rollout", "list", "--format", "json"])?;
    let list: Value = serde_json::from_str(&stuck)?;
    let id = list["rollouts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["state"] == "running")
        .and_then(|r| r["id"].as_str())
        .context("the stuck rollout")?
        .to_string();
    let path = format!("/api/rollouts/{id}/pause");
    let origin = format!("Origin: {}", dash.origin);
    let json = "Content-Type: application/json".to_string();
    let token = format!("X-CSRF-Token: {csrf}");
    let post = |headers: &[&String]| {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        http(at, "POST", &path, &headers, "{}")
    };
    refused(&post(&[&origin, &json, &token])?, "no session")?;
    refused(&post(&[&with_cookie[0], &origin, &json])?, "CSRF")?;
    refused(&post(&[&with_cookie[0], &json, &token])?, "Origin")?;
    refused(
        &post(&[&with_cookie[0], &origin, &token])?,
        "application/json",
    )?;
    ensure!(
        status(ctl, &id)?["state"] == "running",
        "nothing refused acted"
    );
    // With all of them, the same request acts: the refusals were about what was missing.
    let done = post(&[&with_cookie[0], &origin, &json, &token])?;
    ensure!(done.status == 200, "{} {}", done.status, done.body);
    ensure!(status(ctl, &id)?["state"] == "paused");
    Ok(())
}

#[test]
fn an_address_of_any_is_refused_in_one_line_with_status_64() -> Result<()> {
    let out = boltfleet_tests::cluster::run(
        std::process::Command::new(boltfleet_tests::cluster::bin("boltfleet"))
            .env_remove("HOME")
            .args(["ui", "--listen", "0.0.0.0:8080"]),
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(64), "{:?}: {stderr}", out.status);
    ensure!(
        stderr.contains("0.0.0.0:8080") && stderr.contains("not \"any\""),
        "{stderr}"
    );
    ensure!(out.stdout.is_empty(), "no address printed");
    Ok(())
}
