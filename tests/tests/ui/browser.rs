//! The browser of the dashboard's tests: chromedriver, one headless Chromium session through
//! it (fantoccini), scripts run in the page, waits with a deadline, 1280x800 screenshots.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use boltfleet_tests::cluster::Proc;
use boltfleet_tests::dashboard::Dashboard;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use super::WAIT;

/// chromedriver and one headless Chromium session through it.
pub struct Browser {
    pub client: Client,
    _driver: Proc,
    shots: PathBuf,
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Browser {
    pub async fn start(base: &Path) -> Result<Self> {
        let port = free_port()?;
        let mut cmd = std::process::Command::new("chromedriver");
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", cmd, &base.join("chromedriver.log")).context(
            "chromedriver (apt-get install chromium-driver; scripts/ensure-deps.sh does)",
        )?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                Instant::now() < deadline,
                "chromedriver did not listen: {}",
                driver.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = base.join("chromium-profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,800", "--hide-scrollbars", "--no-first-run",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("a Chromium session")?;
        // The window holds the browser's own bars: grow it until the page gets 1280x800.
        let chrome = client
            .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]", vec![])
            .await?;
        let extra = |i: usize| chrome[i].as_u64().unwrap_or(0) as u32;
        client
            .set_window_size(1280 + extra(0), 800 + extra(1))
            .await?;
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots)?;
        Ok(Self {
            client,
            _driver: driver,
            shots,
        })
    }

    pub async fn js(&self, script: &str) -> Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Polls `script` until `check` holds for its value; the error names `what` and the last.
    pub async fn wait_js(
        &self,
        what: &str,
        script: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + WAIT;
        let mut last = Value::Null;
        loop {
            if let Ok(value) = self.js(script).await {
                if check(&value) {
                    return Ok(value);
                }
                last = value;
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}; last: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Goes to `#/route` of `dash` and waits for that page to be rendered.
    pub async fn page(&self, dash: &Dashboard, route: &str) -> Result<()> {
        self.client
            .goto(&format!("{}/#/{route}", dash.origin))
            .await?;
        self.rendered(route).await
    }

    /// Waits until `#/route` is the page rendered.
    pub async fn rendered(&self, route: &str) -> Result<()> {
        let page = route.split(['/', '?']).next().unwrap_or("fleet");
        let script = format!(
            "const m = document.querySelector('#main'); return m.dataset.ready === '{page}' && m.dataset.route === location.hash && location.hash === '#/{route}'"
        );
        self.wait_js(&format!("page {route}"), &script, |v| v == true)
            .await?;
        Ok(())
    }

    /// The text of every element matching `selector`.
    pub async fn texts(&self, selector: &str) -> Result<Vec<String>> {
        let script = format!(
            "return Array.from(document.querySelectorAll({selector:?})).map(e => e.textContent.trim())"
        );
        Ok(serde_json::from_value(self.js(&script).await?)?)
    }

    /// Clicks `selector` in one step: a live page may replace it between a find and a click.
    pub async fn click(&self, selector: &str) -> Result<()> {
        let script =
            format!("const e = document.querySelector({selector:?}); if (e) e.click(); return !!e");
        ensure!(self.js(&script).await? == true, "no {selector} to click");
        Ok(())
    }

    /// A 1280x800 screenshot of the window as it is.
    pub async fn shot(&self, name: &str) -> Result<()> {
        let png = self.client.screenshot().await?;
        ensure!(png.get(16..24).is_some(), "not a PNG");
        let (w, h) = (
            u32::from_be_bytes(png[16..20].try_into()?),
            u32::from_be_bytes(png[20..24].try_into()?),
        );
        ensure!((w, h) == (1280, 800), "screenshot {name} is {w}x{h}");
        std::fs::write(self.shots.join(format!("{name}.png")), png)?;
        Ok(())
    }
}

/// `target/ui-screenshots`, beside the test executable's profile dir.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/ui-<hash>
    let target = exe.ancestors().nth(3).unwrap_or(Path::new("target"));
    target.join("ui-screenshots")
}
