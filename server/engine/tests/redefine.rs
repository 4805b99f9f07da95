//! What a config reload asks of the engine: new definitions for running
//! programs, and forgetting programs.

use super::*;
use crate::daemon::error::Error;

#[tokio::test(start_paused = true)]
async fn a_new_definition_keeps_the_running_instances_until_a_restart() {
    let h = Harness::new();
    h.engine
        .define(vec![cluster(2).validate("web").expect("web")])
        .await
        .expect("define");
    h.engine
        .start("web".into(), None, false)
        .await
        .expect("start web");
    let before = h.pids("web");
    assert_eq!(before.len(), 2);

    let mut changed = cluster(3);
    changed.command = Some(vec!["app2".into()]);
    h.engine
        .redefine(changed.validate("web").expect("valid"))
        .await
        .expect("redefine");
    assert_eq!(h.pids("web"), before, "a new definition restarts nothing");
    assert_eq!(h.info("web").await.count, 2, "the size waits for a scale");
    let defined = h.engine.defined().await.expect("defined");
    assert!(defined[0].configured && defined[0].running);
    assert_eq!(defined[0].spec.command, ["app2"]);

    h.engine
        .restart("web".into(), false)
        .await
        .expect("rolling restart");
    let after = h.pids("web");
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|p| !before.contains(p)));
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_program_is_forgotten_only_when_nothing_needs_it() {
    let h = Harness::new();
    h.started("db", def(Kind::Child)).await;
    let web = ProgramDef {
        after: Some(vec!["db".into()]),
        ..def(Kind::Child)
    };
    h.started("web", web).await;
    let db = h.pids("db");

    let refused = h.engine.remove("db".into(), None).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Precondition { reason, .. } if reason.contains("`web`")),
        "{refused}"
    );
    assert_eq!(h.pids("db"), db, "refused before anything stopped");

    h.engine
        .remove("web".into(), None)
        .await
        .expect("remove web");
    assert!(h.pids("web").is_empty());
    assert!(matches!(
        h.engine.list(Some("web".into())).await,
        Err(Error::UnknownProgram(_))
    ));
    assert!(!h.engine.defined().await.expect("defined")[0].configured);
    h.engine.remove("db".into(), None).await.expect("remove db");
    assert!(h.engine.list(None).await.expect("list").is_empty());
    h.shut_down().await;
}
