//! `strata version`

use crate::cli::exit;
use crate::version::BuildInfo;

pub fn run(json: bool) -> u8 {
    let info = BuildInfo::current();
    if json {
        match serde_json::to_string_pretty(&info) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("strata: {e}");
                return exit::FAILURE;
            }
        }
    } else {
        println!("strata {}", info.version);
        println!("commit      {}", info.git_commit);
        println!("built       {}", info.build_date);
        println!("schema      postgres {}", info.schema.postgres);
        println!("            mongo    {}", info.schema.mongo);
        println!("            s3       {}", info.schema.s3);
    }
    exit::OK
}
