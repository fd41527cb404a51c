//! `sqlx::migrate!` embeds the migrations when the crate compiles; a new migration file
//! alone would not make Cargo compile it again.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
