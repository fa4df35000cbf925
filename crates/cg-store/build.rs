//! Rebuild when a migration is added: `sqlx::migrate!` embeds the files at compile time but cannot
//! ask the compiler to watch the directory for new ones.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
