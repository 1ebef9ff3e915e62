//! `host-sim channel METHOD`: the data channel from the command line.

use clap::Args;

use super::GlobalArgs;
use crate::channel::{handle, ChannelError, METHODS};
use crate::error::{HostError, Result};

#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// Method name, e.g. host.info
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(METHODS))]
    method: String,

    /// Parameters as JSON
    #[arg(long, default_value = "{}", value_name = "JSON")]
    params: String,
}

pub fn run(global: &GlobalArgs, args: ChannelArgs) -> Result<()> {
    let params: serde_json::Value = serde_json::from_str(&args.params)
        .map_err(|e| HostError::InvalidInput(format!("--params is not valid JSON: {e}")))?;
    let context = global.host_context()?;
    let answer = handle(&context, &args.method, &params).map_err(|error| match error {
        ChannelError::Host(error) => error,
        other => HostError::InvalidInput(other.to_string()),
    })?;
    let text = serde_json::to_string_pretty(&answer)
        .map_err(|e| HostError::InvalidInput(format!("The answer could not be printed: {e}")))?;
    println!("{text}");
    Ok(())
}
