//! A worker's RTMP target name, pinned to the addresses the service checked.
//!
//! `rtmp2sink` connects through GIO, which would resolve the target's name again. A name whose
//! answer changes between the service's check and that connection (DNS rebinding) would then
//! reach whatever the second answer names, such as a service on the operator's network. So a
//! broadcasting worker installs, as its process's GIO resolver, a subclass of GLib's own
//! resolver: pinned names are answered with the checked addresses and no query, and every
//! other lookup (LiveKit's ICE servers, reverse lookups) goes to GLib's resolver unchanged.
//!
//! GIO's resolver has no Rust subclassing support, so the class is registered here through
//! GObject's C API, as a direct subclass of whatever type GIO's default resolver has.

use std::collections::BTreeMap;
use std::ffi::{c_char, CStr, CString};
use std::net::IpAddr;
use std::ptr;
use std::sync::{Mutex, OnceLock};

use gio::ffi as gio_ffi;
use gio::glib;
use gio::prelude::*;
use glib::ffi as glib_ffi;
use glib::gobject_ffi;
use glib::translate::{FromGlib, IntoGlib, IntoGlibPtr};

/// Why the pinning resolver could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot pin the RTMP target's name: {0}")]
pub struct PinError(String);

/// Names pinned in this process, lower-case without a trailing dot, and their addresses.
static PINS: Mutex<BTreeMap<String, Vec<IpAddr>>> = Mutex::new(BTreeMap::new());

/// The resolver type, registered once per process (or why that failed).
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// GLib's own name lookups, which pinned names bypass and all others reach.
static PARENT: OnceLock<ParentLookups> = OnceLock::new();

type LookupSync = unsafe extern "C" fn(
    *mut gio_ffi::GResolver,
    *const c_char,
    *mut gio_ffi::GCancellable,
    *mut *mut glib_ffi::GError,
) -> *mut glib_ffi::GList;
type LookupAsync = unsafe extern "C" fn(
    *mut gio_ffi::GResolver,
    *const c_char,
    *mut gio_ffi::GCancellable,
    gio_ffi::GAsyncReadyCallback,
    glib_ffi::gpointer,
);
type LookupWithFlagsSync = unsafe extern "C" fn(
    *mut gio_ffi::GResolver,
    *const c_char,
    gio_ffi::GResolverNameLookupFlags,
    *mut gio_ffi::GCancellable,
    *mut *mut glib_ffi::GError,
) -> *mut glib_ffi::GList;
type LookupWithFlagsAsync = unsafe extern "C" fn(
    *mut gio_ffi::GResolver,
    *const c_char,
    gio_ffi::GResolverNameLookupFlags,
    *mut gio_ffi::GCancellable,
    gio_ffi::GAsyncReadyCallback,
    glib_ffi::gpointer,
);
type LookupFinish = unsafe extern "C" fn(
    *mut gio_ffi::GResolver,
    *mut gio_ffi::GAsyncResult,
    *mut *mut glib_ffi::GError,
) -> *mut glib_ffi::GList;

/// The parent class's name lookups, as the class struct held them before they were replaced.
struct ParentLookups {
    by_name: Option<LookupSync>,
    by_name_async: Option<LookupAsync>,
    by_name_finish: Option<LookupFinish>,
    with_flags: Option<LookupWithFlagsSync>,
    with_flags_async: Option<LookupWithFlagsAsync>,
    with_flags_finish: Option<LookupFinish>,
}

/// Answers `host` with `addresses` in this process from now on, without asking DNS. An empty
/// list makes every lookup of `host` fail. Installs the pinning resolver on first use.
pub fn pin(host: &str, addresses: &[IpAddr]) -> Result<(), PinError> {
    INSTALLED.get_or_init(install).clone().map_err(PinError)?;
    PINS.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(normalized(host), addresses.to_vec());
    Ok(())
}

fn normalized(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Registers the subclass of the current default resolver's type and makes an instance of it
/// the default.
fn install() -> Result<(), String> {
    let default = gio::Resolver::default();
    let parent = default.type_();
    let mut query = gobject_ffi::GTypeQuery {
        type_: 0,
        type_name: ptr::null(),
        class_size: 0,
        instance_size: 0,
    };
    // SAFETY: `parent` is a registered, instantiated type; g_type_query fills `query`.
    unsafe { gobject_ffi::g_type_query(parent.into_glib(), &mut query) };
    if query.type_ == 0 {
        return Err(format!("GIO's resolver type {parent} cannot be queried"));
    }
    // SAFETY: the class and instance sizes are the parent's own, so the subclass adds no
    // fields; `class_init` only replaces function pointers of the GResolverClass it receives.
    let subclass = unsafe {
        gobject_ffi::g_type_register_static_simple(
            parent.into_glib(),
            c"EdgemeetPinnedResolver".as_ptr(),
            query.class_size,
            Some(class_init),
            query.instance_size,
            None,
            0,
        )
    };
    if subclass == 0 {
        return Err("GObject refused to register the pinning resolver".into());
    }
    // SAFETY: `subclass` was just registered as a subclass of GResolver.
    let subclass = unsafe { glib::Type::from_glib(subclass) };
    let resolver = glib::Object::with_type(subclass)
        .downcast::<gio::Resolver>()
        .map_err(|_| "the pinning resolver is not a GResolver".to_string())?;
    resolver.set_default();
    Ok(())
}

/// Keeps the parent's name lookups and puts the pinning ones in their place.
unsafe extern "C" fn class_init(class: glib_ffi::gpointer, _data: glib_ffi::gpointer) {
    // SAFETY: GObject calls this with the new type's class struct, a GResolverClass (or a
    // larger struct that starts with one) holding a copy of the parent's function pointers.
    let class = unsafe { &mut *(class as *mut gio_ffi::GResolverClass) };
    let _ = PARENT.set(ParentLookups {
        by_name: class.lookup_by_name,
        by_name_async: class.lookup_by_name_async,
        by_name_finish: class.lookup_by_name_finish,
        with_flags: class.lookup_by_name_with_flags,
        with_flags_async: class.lookup_by_name_with_flags_async,
        with_flags_finish: class.lookup_by_name_with_flags_finish,
    });
    class.lookup_by_name = Some(lookup_by_name);
    class.lookup_by_name_async = Some(lookup_by_name_async);
    class.lookup_by_name_finish = Some(lookup_by_name_finish);
    class.lookup_by_name_with_flags = Some(lookup_by_name_with_flags);
    class.lookup_by_name_with_flags_async = Some(lookup_by_name_with_flags_async);
    class.lookup_by_name_with_flags_finish = Some(lookup_by_name_with_flags_finish);
}

/// The pinned answer for `hostname`, if it is pinned: the addresses of the asked family, or
/// why there are none.
fn pinned_answer(
    hostname: *const c_char,
    flags: gio_ffi::GResolverNameLookupFlags,
) -> Option<Result<Vec<IpAddr>, String>> {
    if hostname.is_null() {
        return None;
    }
    // SAFETY: GResolver passes a NUL-terminated host name.
    let host = unsafe { CStr::from_ptr(hostname) }.to_str().ok()?;
    let pins = PINS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let addresses = pins.get(&normalized(host))?;
    let wanted = |ip: &IpAddr| match flags {
        gio_ffi::G_RESOLVER_NAME_LOOKUP_FLAGS_IPV4_ONLY => ip.is_ipv4(),
        gio_ffi::G_RESOLVER_NAME_LOOKUP_FLAGS_IPV6_ONLY => ip.is_ipv6(),
        _ => true,
    };
    let found: Vec<IpAddr> = addresses.iter().copied().filter(wanted).collect();
    Some(match (found.is_empty(), addresses.is_empty()) {
        (false, _) => Ok(found),
        (true, true) => Err(format!(
            "{host} had no checked address when the job was accepted, and is not looked up \
             again"
        )),
        (true, false) => Err(format!(
            "none of the addresses checked for {host} when the job was accepted is of the \
             family asked for"
        )),
    })
}

/// A GList of new GInetAddress references, as GResolver returns them.
fn address_list(addresses: &[IpAddr]) -> *mut glib_ffi::GList {
    let mut list = ptr::null_mut();
    for &ip in addresses {
        // SAFETY: into_glib_ptr hands over one strong reference, which the list then owns;
        // the list is this function's until it returns it.
        list = unsafe {
            let address: *mut gio_ffi::GInetAddress = gio::InetAddress::from(ip).into_glib_ptr();
            glib_ffi::g_list_append(list, address as glib_ffi::gpointer)
        };
    }
    list
}

fn not_found(message: &str) -> *mut glib_ffi::GError {
    let message = CString::new(message.replace('\0', "")).unwrap_or_default();
    // SAFETY: the resolver error domain and a NUL-terminated message; GLib copies the text.
    unsafe {
        glib_ffi::g_error_new_literal(
            gio_ffi::g_resolver_error_quark(),
            gio_ffi::G_RESOLVER_ERROR_NOT_FOUND,
            message.as_ptr(),
        )
    }
}

/// Answers a lookup at once: the list, or the error through `error` as `g_set_error` would.
unsafe fn answer_now(
    answer: Result<Vec<IpAddr>, String>,
    error: *mut *mut glib_ffi::GError,
) -> *mut glib_ffi::GList {
    match answer {
        Ok(addresses) => address_list(&addresses),
        Err(message) => {
            if !error.is_null() {
                // SAFETY: the caller passed a location for an error, which GLib leaves null.
                unsafe { *error = not_found(&message) };
            }
            ptr::null_mut()
        }
    }
}

/// Marks the tasks that carry a pinned answer, to tell them from the parent's own tasks.
unsafe extern "C" fn pinned_task_tag() {}

unsafe extern "C" fn free_addresses(list: glib_ffi::gpointer) {
    // SAFETY: the task only holds lists made by `address_list`.
    unsafe { gio_ffi::g_resolver_free_addresses(list as *mut glib_ffi::GList) };
}

/// Answers an async lookup with a task that completes in the caller's main context.
unsafe fn answer_later(
    resolver: *mut gio_ffi::GResolver,
    answer: Result<Vec<IpAddr>, String>,
    cancellable: *mut gio_ffi::GCancellable,
    callback: gio_ffi::GAsyncReadyCallback,
    user_data: glib_ffi::gpointer,
) {
    // SAFETY: a GTask for this resolver; returning into it passes the list's ownership to the
    // task (freed by `free_addresses` if nobody takes it), and the callback runs from the
    // caller's main context as GIO promises.
    unsafe {
        let task = gio_ffi::g_task_new(
            resolver as *mut gobject_ffi::GObject,
            cancellable,
            callback,
            user_data,
        );
        gio_ffi::g_task_set_source_tag(task, pinned_task_tag as glib_ffi::gpointer);
        match answer {
            Ok(addresses) => gio_ffi::g_task_return_pointer(
                task,
                address_list(&addresses) as glib_ffi::gpointer,
                Some(free_addresses),
            ),
            Err(message) => gio_ffi::g_task_return_error(task, not_found(&message)),
        }
        gobject_ffi::g_object_unref(task as *mut gobject_ffi::GObject);
    }
}

/// The list from a task made by [`answer_later`], or `None` if the parent made `result`.
unsafe fn finish_pinned(
    resolver: *mut gio_ffi::GResolver,
    result: *mut gio_ffi::GAsyncResult,
    error: *mut *mut glib_ffi::GError,
) -> Option<*mut glib_ffi::GList> {
    // SAFETY: `result` is the GAsyncResult GIO passes back; only our own tasks are opened.
    unsafe {
        let ours = gio_ffi::g_task_is_valid(result, resolver as *mut gobject_ffi::GObject)
            != glib_ffi::GFALSE
            && gio_ffi::g_task_get_source_tag(result as *mut gio_ffi::GTask)
                == pinned_task_tag as glib_ffi::gpointer;
        ours.then(|| {
            gio_ffi::g_task_propagate_pointer(result as *mut gio_ffi::GTask, error)
                as *mut glib_ffi::GList
        })
    }
}

/// One of the parent's lookups. `class_init` stores them before any instance exists; should
/// one be missing, the lookup fails rather than panicking inside a C callback.
fn parent<T>(pick: impl FnOnce(&ParentLookups) -> Option<T>) -> Option<T> {
    PARENT.get().and_then(pick)
}

/// Why a lookup the parent class does not implement fails, as GResolver says for one.
const NOT_SUPPORTED: &str = "this lookup is not supported";

/// A lookup the parent class does not implement: an error.
unsafe fn unsupported(error: *mut *mut glib_ffi::GError) -> *mut glib_ffi::GList {
    // SAFETY: as `answer_now`.
    unsafe { answer_now(Err(NOT_SUPPORTED.into()), error) }
}

unsafe extern "C" fn lookup_by_name(
    resolver: *mut gio_ffi::GResolver,
    hostname: *const c_char,
    cancellable: *mut gio_ffi::GCancellable,
    error: *mut *mut glib_ffi::GError,
) -> *mut glib_ffi::GList {
    // SAFETY: the parent's function with the arguments GResolver gave us.
    unsafe {
        match (
            pinned_answer(hostname, gio_ffi::G_RESOLVER_NAME_LOOKUP_FLAGS_DEFAULT),
            parent(|p| p.by_name),
        ) {
            (Some(answer), _) => answer_now(answer, error),
            (None, Some(parent)) => parent(resolver, hostname, cancellable, error),
            (None, None) => unsupported(error),
        }
    }
}

unsafe extern "C" fn lookup_by_name_with_flags(
    resolver: *mut gio_ffi::GResolver,
    hostname: *const c_char,
    flags: gio_ffi::GResolverNameLookupFlags,
    cancellable: *mut gio_ffi::GCancellable,
    error: *mut *mut glib_ffi::GError,
) -> *mut glib_ffi::GList {
    // SAFETY: as `lookup_by_name`.
    unsafe {
        match (pinned_answer(hostname, flags), parent(|p| p.with_flags)) {
            (Some(answer), _) => answer_now(answer, error),
            (None, Some(parent)) => parent(resolver, hostname, flags, cancellable, error),
            (None, None) => unsupported(error),
        }
    }
}

unsafe extern "C" fn lookup_by_name_async(
    resolver: *mut gio_ffi::GResolver,
    hostname: *const c_char,
    cancellable: *mut gio_ffi::GCancellable,
    callback: gio_ffi::GAsyncReadyCallback,
    user_data: glib_ffi::gpointer,
) {
    // SAFETY: as `lookup_by_name`.
    unsafe {
        match (
            pinned_answer(hostname, gio_ffi::G_RESOLVER_NAME_LOOKUP_FLAGS_DEFAULT),
            parent(|p| p.by_name_async),
        ) {
            (None, Some(parent)) => parent(resolver, hostname, cancellable, callback, user_data),
            (answer, _) => answer_later(
                resolver,
                answer.unwrap_or_else(|| Err(NOT_SUPPORTED.into())),
                cancellable,
                callback,
                user_data,
            ),
        }
    }
}

unsafe extern "C" fn lookup_by_name_with_flags_async(
    resolver: *mut gio_ffi::GResolver,
    hostname: *const c_char,
    flags: gio_ffi::GResolverNameLookupFlags,
    cancellable: *mut gio_ffi::GCancellable,
    callback: gio_ffi::GAsyncReadyCallback,
    user_data: glib_ffi::gpointer,
) {
    // SAFETY: as `lookup_by_name`.
    unsafe {
        match (
            pinned_answer(hostname, flags),
            parent(|p| p.with_flags_async),
        ) {
            (None, Some(parent)) => {
                parent(resolver, hostname, flags, cancellable, callback, user_data)
            }
            (answer, _) => answer_later(
                resolver,
                answer.unwrap_or_else(|| Err(NOT_SUPPORTED.into())),
                cancellable,
                callback,
                user_data,
            ),
        }
    }
}

/// Completes an async lookup: a pinned answer's task, else through `parent`'s finish.
unsafe fn finish(
    resolver: *mut gio_ffi::GResolver,
    result: *mut gio_ffi::GAsyncResult,
    error: *mut *mut glib_ffi::GError,
    parent: Option<LookupFinish>,
) -> *mut glib_ffi::GList {
    // SAFETY: as `lookup_by_name`.
    unsafe {
        match (finish_pinned(resolver, result, error), parent) {
            (Some(list), _) => list,
            (None, Some(parent)) => parent(resolver, result, error),
            (None, None) => unsupported(error),
        }
    }
}

unsafe extern "C" fn lookup_by_name_finish(
    resolver: *mut gio_ffi::GResolver,
    result: *mut gio_ffi::GAsyncResult,
    error: *mut *mut glib_ffi::GError,
) -> *mut glib_ffi::GList {
    // SAFETY: as `lookup_by_name`.
    unsafe { finish(resolver, result, error, parent(|p| p.by_name_finish)) }
}

unsafe extern "C" fn lookup_by_name_with_flags_finish(
    resolver: *mut gio_ffi::GResolver,
    result: *mut gio_ffi::GAsyncResult,
    error: *mut *mut glib_ffi::GError,
) -> *mut glib_ffi::GList {
    // SAFETY: as `lookup_by_name`.
    unsafe { finish(resolver, result, error, parent(|p| p.with_flags_finish)) }
}

/// How many names are pinned (for tests).
#[cfg(test)]
fn pinned_count() -> usize {
    PINS.lock().map(|pins| pins.len()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::net::{Ipv4Addr, TcpListener};

    #[test]
    fn a_pinned_name_answers_with_its_addresses_and_others_reach_glib() {
        let v4: IpAddr = Ipv4Addr::LOCALHOST.into();
        let v6: IpAddr = "2001:db8::7".parse().expect("ip");
        pin("Rtmp.Pinned.Invalid.", &[v4, v6]).expect("pin");
        assert!(pinned_count() >= 1);
        let resolver = gio::Resolver::default();
        assert_eq!(resolver.type_().name(), "EdgemeetPinnedResolver");

        let all: Vec<IpAddr> = resolver
            .lookup_by_name("rtmp.pinned.invalid", gio::Cancellable::NONE)
            .expect("pinned")
            .into_iter()
            .map(IpAddr::from)
            .collect();
        assert_eq!(all, vec![v4, v6]);
        let only_v6: Vec<IpAddr> = resolver
            .lookup_by_name_with_flags(
                "RTMP.pinned.invalid",
                gio::ResolverNameLookupFlags::IPV6_ONLY,
                gio::Cancellable::NONE,
            )
            .expect("pinned v6")
            .into_iter()
            .map(IpAddr::from)
            .collect();
        assert_eq!(only_v6, vec![v6]);

        // A name nobody pinned still reaches GLib's resolver, which finds it nowhere.
        let error = resolver
            .lookup_by_name("not-pinned.invalid", gio::Cancellable::NONE)
            .expect_err("not pinned, not in DNS");
        assert!(
            error.matches(gio::ResolverError::NotFound)
                || error.matches(gio::ResolverError::TemporaryFailure),
            "{error}"
        );
    }

    #[test]
    fn a_connection_by_a_pinned_name_goes_to_the_pinned_address_and_an_empty_pin_refuses() {
        // Async, through GSocketClient as rtmp2sink connects: a name DNS does not know reaches
        // the listener the pin names.
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("port").port();
        pin("listener.pinned.invalid", &[Ipv4Addr::LOCALHOST.into()]).expect("pin");
        pin("refused.pinned.invalid", &[]).expect("pin");
        let accepted = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).expect("read");
            byte[0]
        });

        let context = glib::MainContext::new();
        let (connected, refused) = context
            .with_thread_default(|| {
                context.block_on(async {
                    let client = gio::SocketClient::new();
                    let connected = client
                        .connect_to_host_future("listener.pinned.invalid", port)
                        .await;
                    let refused = client
                        .connect_to_host_future("refused.pinned.invalid", port)
                        .await;
                    (connected, refused)
                })
            })
            .expect("main context");
        let connection = connected.expect("connect by the pinned name");
        connection
            .output_stream()
            .write_all(&[7], gio::Cancellable::NONE)
            .expect("write");
        assert_eq!(accepted.join().expect("listener"), 7);
        let error = refused.expect_err("an empty pin lets nothing through");
        assert!(
            error
                .message()
                .contains("refused.pinned.invalid had no checked address"),
            "{error}"
        );
    }
}
