//! The [`Plugin`] trait plugin authors implement, and the adapter that turns it into the WIT
//! `provider` export.

use crate::bindings::exports::waygate::plugin::provider::Guest;
use crate::bindings::waygate::plugin::types as wit;
use crate::content::{
    Arguments, CallContext, CallResult, Metadata, Prompt, PromptError, PromptResult, Resource,
    ResourceContents, ResourceError, Tool,
};
use std::marker::PhantomData;

/// A Waygate plugin. Only [`Plugin::metadata`], [`Plugin::tools`] and [`Plugin::call`] are
/// required; a plugin without resources or prompts keeps the default methods.
///
/// Every method runs in a fresh instance of the component, so `self`-less associated
/// functions are all there is: there is no state to carry between calls except through
/// [`crate::kv`].
pub trait Plugin: 'static {
    /// Who the plugin is. Called once when the host loads it.
    fn metadata() -> Metadata;
    /// The plugin's tools. Called once when the host loads it.
    fn tools() -> Vec<Tool>;
    /// Runs `tool`. The arguments were validated against the tool's schema by the host.
    ///
    /// # Errors
    ///
    /// A [`crate::CallError`] for an unknown tool, unusable arguments or a failure.
    fn call(tool: &str, arguments: Arguments, context: &CallContext) -> CallResult;
    /// The resources the plugin serves now.
    fn resources() -> Vec<Resource> {
        Vec::new()
    }
    /// Reads a resource.
    ///
    /// # Errors
    ///
    /// [`ResourceError::NotFound`] for a URI the plugin does not serve.
    fn read_resource(uri: &str) -> Result<Vec<ResourceContents>, ResourceError> {
        Err(ResourceError::NotFound(uri.to_owned()))
    }
    /// The prompts the plugin offers.
    fn prompts() -> Vec<Prompt> {
        Vec::new()
    }
    /// Renders a prompt.
    ///
    /// # Errors
    ///
    /// [`PromptError::NotFound`] for an unknown prompt, or an argument problem.
    fn get_prompt(
        name: &str,
        _arguments: &[(String, String)],
    ) -> Result<PromptResult, PromptError> {
        Err(PromptError::NotFound(name.to_owned()))
    }
}

/// Connects a [`Plugin`] to the generated bindings; used by [`crate::export_plugin!`].
#[doc(hidden)]
pub struct Adapter<P>(PhantomData<P>);

impl<P: Plugin> Guest for Adapter<P> {
    fn metadata() -> wit::PluginMetadata {
        crate::log::install_panic_hook();
        P::metadata().into_wit()
    }

    fn list_tools() -> Vec<wit::Tool> {
        crate::log::install_panic_hook();
        P::tools().into_iter().map(Tool::into_wit).collect()
    }

    fn call_tool(
        tool: String,
        arguments_json: String,
        context: wit::CallContext,
    ) -> Result<wit::ToolResult, wit::CallError> {
        crate::log::install_panic_hook();
        let context = CallContext {
            request_id: context.request_id,
            caller_id: context.caller_id,
        };
        P::call(&tool, Arguments::new(arguments_json), &context)
            .map(|r| r.into_wit())
            .map_err(|e| e.into_wit())
    }

    fn list_resources() -> Vec<wit::Resource> {
        crate::log::install_panic_hook();
        P::resources().into_iter().map(Resource::into_wit).collect()
    }

    fn read_resource(uri: String) -> Result<Vec<wit::ResourceContents>, wit::ResourceError> {
        crate::log::install_panic_hook();
        P::read_resource(&uri)
            .map(|items| items.into_iter().map(ResourceContents::into_wit).collect())
            .map_err(ResourceError::into_wit)
    }

    fn list_prompts() -> Vec<wit::Prompt> {
        crate::log::install_panic_hook();
        P::prompts().into_iter().map(Prompt::into_wit).collect()
    }

    fn get_prompt(
        name: String,
        arguments: Vec<(String, String)>,
    ) -> Result<wit::PromptResult, wit::PromptError> {
        crate::log::install_panic_hook();
        P::get_prompt(&name, &arguments)
            .map(PromptResult::into_wit)
            .map_err(PromptError::into_wit)
    }
}
