//! `vansite console` end to end: two linked test hosts with stand-in routers, a service between
//! them, and the console of one site read over HTTP (curl on that host) and in a real browser
//! (Debian's chromium, headless, in that host's network namespace): the token is required, the
//! page and `/metrics` show both sites, the link up, the service reachable, and a new
//! connection appears. A screenshot is left in `<target>/test-artefacts/console.png`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    link_sites, running_site, serve_answer, skip_without_test_host, target_dir, text, vansite_ok,
    wait_reachable, Host,
};

/// The collector's discovery and the first FLUSH answers take a few seconds after the server
/// starts; links and services take their time to show up at the other site.
const LIMIT: Duration = Duration::from_secs(90);
const SERVICE_PORT: &str = "9191";
const LISTENER_PORT: &str = "9292";
const SOCKET_UNIT: &str = "vansite-default-console.socket";

/// An HTTP GET from inside the host (its loopback is its own): the status code and the body.
fn get(host: &Host, url: &str, headers: &[&str]) -> (u16, String) {
    let mut args = vec!["curl", "-sS", "-w", "\n%{http_code}"];
    for header in headers {
        args.extend(["-H", header]);
    }
    args.push(url);
    let out = host.ok(&args);
    let (body, code) = out.rsplit_once('\n').expect("curl's status line");
    (code.parse().expect("an HTTP status"), body.to_string())
}

/// Runs Debian's chromium, headless, in the host's network namespace (as root: a browser needs
/// no part of the test user's session) with `args` and the URL.
fn chromium(host: &Host, args: &[&str], url: &str) -> String {
    let profile = target_dir().join(format!("test-artefacts/chromium-{}", host.name));
    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            &host.user(),
            "chromium",
            "--headless",
            "--no-sandbox",
        ])
        .args(["--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium (tests/run.sh installs it)");
    assert!(
        output.status.success(),
        "chromium {args:?}: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The page's DOM once its script has fetched and drawn the network a few times.
fn rendered_page(host: &Host, url: &str) -> String {
    chromium(host, &["--virtual-time-budget=6000", "--dump-dom"], url)
}

/// Polls `read` until `done` holds for what it returns (bounded); returns that.
fn wait_for(what: &str, mut read: impl FnMut() -> String, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let seen = read();
        if done(&seen) {
            return seen;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{what} not seen after {LIMIT:?}:\n{seen}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn console_shows_two_linked_sites_their_service_and_new_connections() {
    if skip_without_test_host() {
        return;
    }
    let west = running_site("conwest", true);
    let east = running_site("coneast", false);
    link_sites(&east, &west);
    serve_answer(&east, 9191, "SYSTEM:'echo hello'");
    vansite_ok(&east, &["connector", "create", "echo", SERVICE_PORT]);
    vansite_ok(&west, &["listener", "create", "echo", LISTENER_PORT]);
    wait_reachable(&west, "echo");

    // The console listens without running: nothing starts before a browser connects.
    let plain: Value =
        serde_json::from_str(&vansite_ok(&west, &["console", "--output", "json"])).unwrap();
    assert_eq!(plain["url"], "http://127.0.0.1:8010/", "{plain:#}");
    assert_eq!(plain["port"], 8010);
    assert_eq!(plain["unit"], SOCKET_UNIT);
    let states = west.run(&[
        "systemctl",
        "--user",
        "is-active",
        SOCKET_UNIT,
        "vansite-default-console.service",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&states.stdout),
        "active\ninactive\n"
    );

    let url = vansite_ok(&west, &["console", "--print-url"])
        .trim()
        .to_string();
    let token = url
        .strip_prefix("http://127.0.0.1:8010/?token=")
        .unwrap_or_else(|| panic!("the URL with its token: {url}"))
        .to_string();

    // Without the token: 401, whatever is asked for; with it, the page.
    for path in ["/", "/metrics", "/api/network", "/?token=wrong"] {
        let (status, _) = get(&west, &format!("http://127.0.0.1:8010{path}"), &[]);
        assert_eq!(status, 401, "{path}");
    }
    let (status, page) = get(&west, &url, &[]);
    assert_eq!(status, 200);
    assert!(page.contains("<title>vansite console</title>"), "{page}");

    // Prometheus with the token as a bearer header: both sites, the link up, the service.
    let bearer = format!("Authorization: Bearer {token}");
    let metrics = wait_for(
        "both sites and the link in /metrics",
        || get(&west, "http://127.0.0.1:8010/metrics", &[&bearer]).1,
        |m| {
            m.contains("name=\"conwest\"")
                && m.contains("name=\"coneast\"")
                && m.contains("role=\"inter-router\",status=\"up\"} 1")
                && m.contains("vansite_service_reachable{routing_key=\"echo\"} 1")
        },
    );
    assert!(
        metrics.contains("# TYPE skupper_site_info gauge"),
        "{metrics}"
    );

    // A real browser: both sites by name, the link from east to west up, the service
    // reachable; no connection yet.
    let dom = wait_for(
        "both sites, the link and the service on the page",
        || rendered_page(&west, &url),
        |dom| {
            dom.contains("class=\"site local\" data-site=\"conwest\" data-state=\"up\"")
                && dom.contains("class=\"site\" data-site=\"coneast\" data-state=\"up\"")
                && dom.contains("data-from=\"coneast\" data-to=\"conwest\" data-state=\"up\"")
                && dom.contains("data-service=\"echo\" data-reachable=\"true\"")
        },
    );
    assert!(!dom.contains("data-connection="), "{dom}");
    // This site's listener at the port its clients use (not the router's behind it).
    assert!(dom.contains(&format!(":{LISTENER_PORT} (")), "{dom}");
    assert!(dom.contains("router connected"), "{dom}");

    // A connection through west's listener to east's service appears on the page.
    let answer = west.ok(&[
        "socat",
        "-u",
        &format!("TCP:127.0.0.1:{LISTENER_PORT}"),
        "-",
    ]);
    assert_eq!(answer.trim(), "hello");
    wait_for(
        "the new connection on the page",
        || rendered_page(&west, &url),
        |dom| dom.contains("data-connection="),
    );
    let after = get(&west, "http://127.0.0.1:8010/metrics", &[&bearer]).1;
    assert!(
        after.contains("routing_key=\"echo\",protocol=\"tcp\"} 1"),
        "{after}"
    );

    // The router restarts under the running console: its collector connects again and sees
    // what changed meanwhile (a stale connection would never show the new service), and east
    // again once its link is back.
    west.ok(&[
        "systemctl",
        "--user",
        "restart",
        "vansite-default-router.service",
    ]);
    vansite_ok(&west, &["connector", "create", "after-restart", "9393"]);
    let network = wait_for(
        "the console's collector back after the router restarted",
        || get(&west, "http://127.0.0.1:8010/api/network", &[&bearer]).1,
        |body| {
            body.contains("\"routingKey\":\"after-restart\"")
                && body.contains("\"name\":\"coneast\"")
                && body.contains("\"state\":\"up\"")
        },
    );
    let network: serde_json::Value = serde_json::from_str(&network).unwrap();
    assert_eq!(network["router"]["state"], "connected", "{network:#}");
    assert_eq!(network["sites"].as_array().unwrap().len(), 2, "{network:#}");

    let screenshot = target_dir().join("test-artefacts/console.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    chromium(
        &west,
        &[
            "--virtual-time-budget=6000",
            "--window-size=1280,1600",
            &format!("--screenshot={}", screenshot.display()),
        ],
        &url,
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 0);

    // `vansite delete` takes the console with the site.
    vansite_ok(&west, &["delete"]);
    let left = west.ok(&["sh", "-c", "ls .config/systemd/user | grep console; true"]);
    assert_eq!(left.trim(), "", "console units left");
}
