//! The same Counter in Rust, JavaScript and Python: component size, first
//! compile, instantiate (wake from hibernation), memory per active instance and
//! hot-object throughput.

use crate::load::run_load;
use crate::{instantiate_times, mib};
use dohost_tests::{polyglot_classes, TestHost};
use std::time::{Duration, Instant};

pub async fn run(duration: Duration) -> anyhow::Result<()> {
    println!();
    println!(
        "| {:<10} | {:>9} | {:>11} | {:>16} | {:>15} | {:>9} | {:>8} |",
        "class", "size MB", "compile s", "instantiate µs", "MiB / instance", "req/s", "p99 ms"
    );
    println!(
        "|{:-<12}|{:->11}|{:->13}|{:->18}|{:->17}|{:->11}|{:->10}|",
        "", "", "", "", "", "", ""
    );
    let classes = polyglot_classes();
    for class in ["Counter", "JsCounter", "PyCounter"] {
        let component = classes
            .iter()
            .find(|(n, _)| *n == class)
            .map(|(_, p)| p.clone())
            .expect("class");
        let size = std::fs::metadata(&component)?.len();
        // First compile, without any cache.
        let dir = tempfile::tempdir()?;
        let config = dohost::config::ClassConfig {
            name: class.into(),
            component: component.clone(),
            allow: Vec::new(),
        };
        let engine = dohost::guest::engine::Engine::new(
            &Default::default(),
            dir.path(),
            std::slice::from_ref(&config),
            0,
        )?;
        let started = Instant::now();
        engine.load_class(&config)?;
        let compile = started.elapsed();
        let (median, _) = instantiate_times(&component, 200).await?;
        // Memory: 100 active instances of the class.
        let host = TestHost::start_with(&classes, "[limits]\nhibernate_after = \"1h\"").await;
        host.get(&format!("/obj/{class}/warm/")).await;
        let (before, _) = host.rss();
        for i in 0..100 {
            host.get(&format!("/obj/{class}/m{i}/")).await;
        }
        let (after, _) = host.rss();
        let addr = host.url.trim_start_matches("http://").to_string();
        let path = format!("/obj/{class}/hot/increment");
        let s = run_load(&addr, 32, duration, move |_, _| {
            ("POST", path.clone(), None)
        })
        .await;
        println!(
            "| {class:<10} | {:>9.2} | {:>11.2} | {:>16.1} | {:>15.2} | {:>9.0} | {:>8.2} |",
            size as f64 / 1e6,
            compile.as_secs_f64(),
            median * 1e6,
            mib(after.saturating_sub(before)) / 100.0,
            s.per_second(),
            s.percentile(99.0).as_secs_f64() * 1e3
        );
    }
    Ok(())
}
