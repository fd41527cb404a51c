//! The Kubernetes API fake of the test crate as a process, for scripts that run the real
//! binaries against it: serves on a loopback port, writes a kubeconfig pointing at it, and
//! prints `kubeconfig=PATH`, `url=URL` and `ready`. `POST /fake/ready/NAMESPACE/NAME`
//! reports a Deployment ready. Runs until killed.
//! Usage: kube-fake DIR

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: kube-fake DIR");
    let fake = switchyard_tests::kube_fake::KubeFake::start(1).await;
    let url = fake.urls[0].clone();
    let path = format!("{dir}/kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\n"
        ),
    )?;
    println!("kubeconfig={path}");
    println!("url={url}");
    println!("ready");
    std::future::pending::<()>().await;
    drop(fake);
    Ok(())
}
