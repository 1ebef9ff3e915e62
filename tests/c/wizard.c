/*
 * A host program in C11 that connects a company with the plugin's connect
 * wizard (ABI 1.2) and runs the first synchronisation, through
 * include/online_desktop.h only: no Rust on the host side.
 *
 *   wizard <plugin-library> <licence-file> <service-url> <data-dir> <online-id-email>
 *
 * The password of the Online ID comes from the environment variable
 * OD_ONLINE_ID_PASSWORD (never on the command line). The Online ID must
 * exist and be verified at <service-url>; the licence in <licence-file> must
 * be bound to LICENCE_NUMBER and COMPANY_ID below.
 *
 * The host answers every host-channel method the plugin asks for a small
 * company with three contacts (docs/HOST_CHANNEL.md), sets an atomic flag in
 * request_pump and pumps on its main thread (its "UI thread"). It opens the
 * wizard and walks it: prerequisites, welcome, Online ID (first a wrong
 * password, which must show as an error at the password field, then the
 * right one), company, start (now), finish; waits for the page to say done,
 * then for the first synchronisation, stops synchronisation, frees the
 * plugin and unloads the library. Every wait has a deadline.
 *
 * It prints one "page <name>" line whenever the page changes, and the lines
 * tests/c_wizard.rs checks. Exit status 0 only when every expectation held;
 * each failed one is printed to stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "online_desktop.h"

_Static_assert(sizeof(void *) == sizeof(od_entry_fn),
               "dlsym's object pointer must hold a function pointer");

/* How long to wait for the plugin (generous: valgrind on a loaded machine). */
#define WAIT_SECONDS 180

/* The company this host is; tests/c_wizard.rs signs its licence for them. */
#define LICENCE_NUMBER "OD-C-WIZARD-1"
#define COMPANY_ID "c-wizard-company-1"
#define SYSTEM_ID "c-wizard-system-1"
#define COMPANY_NAME "Nordlys Handel AS"

static int failed_expectations;

static void expect(int holds, const char *format, ...) {
    if (holds) {
        return;
    }
    va_list args;
    va_start(args, format);
    fputs("EXPECTATION FAILED: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    failed_expectations++;
}

/* ------------------------------------------------------------ host state */

typedef struct {
    pthread_t ui_thread;
    /* Set by request_pump on any thread, taken by the main loop. */
    atomic_int pump_requested;
    atomic_int requests;
    atomic_int sync_blocks;
    atomic_int sync_unblocks;
    /* connection.record's parameters, written on a plugin thread. */
    pthread_mutex_t lock;
    char *recorded_connection;
    int connection_records;
    /* UI thread only. */
    int events_off_ui_thread;
    int wizard_events;
    char sync_state[32];
    int user_data_frees;
    char *licence_answer;
    const char *email;
} host_state;

/* ----------------------------------------------- minimal JSON reading */

/* The value of `key` in the JSON object starting at `object` (at its own
 * level, not in nested objects or arrays), or NULL. Enough for the plugin's
 * compact, well-formed JSON. */
static const char *json_value(const char *object, const char *key) {
    size_t key_len = strlen(key);
    int depth = 0;
    for (const char *p = object; *p != '\0'; p++) {
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth == 0) {
                return NULL;
            }
        } else if (*p == '"') {
            const char *start = p + 1;
            for (p = start; *p != '\0' && *p != '"'; p++) {
                if (*p == '\\' && p[1] != '\0') {
                    p++;
                }
            }
            if (*p == '\0') {
                return NULL;
            }
            const char *after = p + 1;
            while (*after == ' ') {
                after++;
            }
            if (depth == 1 && *after == ':' && (size_t)(p - start) == key_len &&
                strncmp(start, key, key_len) == 0) {
                after++;
                while (*after == ' ') {
                    after++;
                }
                return after;
            }
        }
    }
    return NULL;
}

/* Whether `key` of `object` is the literal `literal` (true, null, ...). */
static int json_is(const char *object, const char *key, const char *literal) {
    const char *value = json_value(object, key);
    return value != NULL && strncmp(value, literal, strlen(literal)) == 0;
}

/* A string value copied into `out` (escapes kept as they are); "" when the
 * key is missing or not a string. */
static void json_string(const char *object, const char *key, char *out, size_t size) {
    out[0] = '\0';
    const char *value = json_value(object, key);
    if (value == NULL || *value != '"') {
        return;
    }
    value++;
    size_t len = 0;
    while (value[len] != '\0' && value[len] != '"') {
        len += value[len] == '\\' && value[len + 1] != '\0' ? 2 : 1;
    }
    if (len >= size) {
        len = size - 1;
    }
    memcpy(out, value, len);
    out[len] = '\0';
}

/* An integer value; `fallback` when missing or null. */
static long long json_integer(const char *object, const char *key, long long fallback) {
    const char *value = json_value(object, key);
    if (value == NULL || strncmp(value, "null", 4) == 0) {
        return fallback;
    }
    return strtoll(value, NULL, 10);
}

/* The object of the field with id `id` in the page's "fields", or NULL. */
static const char *page_field(const char *page, const char *id) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
    const char *fields = json_value(page, "fields");
    const char *hit = fields != NULL ? strstr(fields, needle) : NULL;
    while (hit != NULL && hit > fields && *hit != '{') {
        hit--;
    }
    return hit;
}

/* ------------------------------------------------------- the company */

typedef struct {
    long long local_id;
    const char *fields;
} contact;

/* The tiny company: three contacts, made in this order (one change-log
 * entry each, seq 1..3). */
static const contact CONTACTS[] = {
    {1, "{\"number\": 10001, \"name\": \"Fjellheim AS\", \"city\": \"Oslo\"}"},
    {2, "{\"number\": 10002, \"name\": \"Kystlinje AS\", \"city\": \"Bergen\"}"},
    {3, "{\"number\": 10003, \"name\": \"Nordlys ANS\", \"city\": null}"},
};
#define CONTACT_COUNT ((long long)(sizeof CONTACTS / sizeof CONTACTS[0]))

typedef struct {
    const char *method;
    const char *answer;
} static_answer;

static const static_answer ANSWERS[] = {
    {"host.info",
     "{\"host_name\": \"C wizard host\", \"host_version\": \"1.0\","
     " \"evaluation_installation\": false,"
     " \"computer\": {\"id\": \"pc-1\", \"name\": \"PC-1\", \"holds_system_database\": true}}"},
    {"system.bindings",
     "{\"bindings\": [{\"add_on\": \"online-desktop\", \"licence_number\": \"" LICENCE_NUMBER
     "\", \"company_id\": \"" COMPANY_ID "\"}]}"},
    {"system.companies",
     "{\"companies\": [{\"id\": \"" COMPANY_ID "\", \"name\": \"" COMPANY_NAME
     "\", \"is_sample\": false, \"online_desktop_connected\": false}]}"},
    {"system.identity", "{\"id\": \"" SYSTEM_ID "\"}"},
    {"company.identity",
     "{\"id\": \"" COMPANY_ID "\", \"name\": \"" COMPANY_NAME "\", \"is_sample\": false}"},
    {"company.registration",
     "{\"name\": \"" COMPANY_NAME "\", \"street\": \"Storgata 1\", \"postcode\": \"0155\","
     " \"city\": \"Oslo\", \"country\": \"Norway\", \"phone\": \"+47 22 00 00 00\","
     " \"email\": \"post@nordlys.example\", \"organisation_number\": \"987 654 321\"}"},
    {"sessions.active", "{\"users\": [], \"integrations\": []}"},
    {"schema.entities",
     "{\"version\": 1, \"entities\": [{\"name\": \"contacts\", \"title\": \"Contacts\","
     " \"online_create\": true, \"fields\": ["
     "{\"name\": \"number\", \"type\": \"integer\", \"required\": true,"
     " \"online\": \"read_only\", \"direction\": \"host_to_online\", \"assigned_by_host\": true},"
     "{\"name\": \"name\", \"type\": \"text\", \"required\": true,"
     " \"online\": \"read_write\", \"direction\": \"two_way\"},"
     "{\"name\": \"city\", \"type\": \"text\", \"required\": false,"
     " \"online\": \"read_write\", \"direction\": \"two_way\"}]}]}"},
    {"changes.position", "{\"seq\": 3}"},
    {"sync.unblock", "{\"blocked\": false}"},
};

/* ------------------------------------------------------------- callbacks */

static int32_t write_text(const od_host_response *response, const char *text) {
    return response->write(response->context, (const uint8_t *)text, strlen(text));
}

/* Fails the request with `message` as the reason. */
static int32_t refuse(const od_host_response *response, const char *message) {
    write_text(response, message);
    return 1;
}

/* {"changes": [...], "last_seq": n} after `after`, at most `limit`. */
static int32_t answer_changes(const char *params, const od_host_response *response) {
    long long after = json_integer(params, "after", 0);
    long long limit = json_integer(params, "limit", 1000);
    long long last = after;
    char chunk[512];
    int failed = write_text(response, "{\"changes\": [");
    for (long long seq = after + 1; seq <= CONTACT_COUNT && seq - after <= limit; seq++) {
        const contact *row = &CONTACTS[seq - 1];
        snprintf(chunk, sizeof chunk,
                 "%s{\"seq\": %lld, \"entity\": \"contacts\", \"local_id\": %lld,"
                 " \"op\": \"upsert\", \"origin\": \"host\", \"record\": %s}",
                 seq > after + 1 ? ", " : "", seq, row->local_id, row->fields);
        failed |= write_text(response, chunk);
        last = seq;
    }
    snprintf(chunk, sizeof chunk, "], \"last_seq\": %lld}", last);
    failed |= write_text(response, chunk);
    return failed != 0;
}

/* {"records": [...], "done": b} after `after_local_id`, at most `limit`. */
static int32_t answer_page(const char *params, const char *entity,
                           const od_host_response *response) {
    long long after = json_integer(params, "after_local_id", 0);
    long long limit = json_integer(params, "limit", 1000);
    int is_contacts = strcmp(entity, "contacts") == 0;
    char chunk[512];
    int failed = write_text(response, "{\"records\": [");
    long long written = 0;
    long long i = 0;
    for (; is_contacts && i < CONTACT_COUNT && written < limit; i++) {
        if (CONTACTS[i].local_id <= after) {
            continue;
        }
        snprintf(chunk, sizeof chunk, "%s{\"local_id\": %lld, \"fields\": %s}",
                 written > 0 ? ", " : "", CONTACTS[i].local_id, CONTACTS[i].fields);
        failed |= write_text(response, chunk);
        written++;
    }
    int done = !is_contacts || i >= CONTACT_COUNT;
    failed |= write_text(response, done ? "], \"done\": true}" : "], \"done\": false}");
    return failed != 0;
}

/* [thread-safe] The plugin asks on its own threads too: every answer is
 * built from constants and the request alone, and the shared counters are
 * atomic (connection.record's copy is under the lock). */
static int32_t OD_CALL host_request(void *user_data, const od_host_request *request,
                                    od_host_response *response) {
    host_state *host = user_data;
    if (request == NULL || response == NULL || request->method == NULL ||
        response->write == NULL) {
        return 1;
    }
    atomic_fetch_add(&host->requests, 1);
    const char *method = request->method;
    for (size_t i = 0; i < sizeof ANSWERS / sizeof ANSWERS[0]; i++) {
        if (strcmp(method, ANSWERS[i].method) == 0) {
            if (strcmp(method, "sync.unblock") == 0) {
                atomic_fetch_add(&host->sync_unblocks, 1);
            }
            return write_text(response, ANSWERS[i].answer) != 0;
        }
    }
    if (strcmp(method, "licence.documents") == 0) {
        return write_text(response, host->licence_answer) != 0;
    }
    if (strcmp(method, "user.current") == 0) {
        /* A super user linked to an employee with the Online ID's e-mail. */
        char answer[512];
        snprintf(answer, sizeof answer,
                 "{\"username\": \"admin\", \"is_super_user\": true, \"employee\":"
                 " {\"id\": \"7\", \"name\": \"Kari Nordmann\", \"email\": \"%s\"}}",
                 host->email);
        return write_text(response, answer) != 0;
    }

    /* The rest read their parameters: a NUL-terminated copy. */
    char *params = malloc(request->params_len + 1);
    if (params == NULL) {
        return refuse(response, "out of memory");
    }
    if (request->params_len > 0) {
        memcpy(params, request->params_json, request->params_len);
    }
    params[request->params_len] = '\0';
    char entity[64];
    json_string(params, "entity", entity, sizeof entity);
    char answer[256];
    int32_t status = 0;
    if (strcmp(method, "changes.read") == 0) {
        status = answer_changes(params, response);
    } else if (strcmp(method, "records.count") == 0) {
        snprintf(answer, sizeof answer, "{\"count\": %lld}",
                 strcmp(entity, "contacts") == 0 ? CONTACT_COUNT : 0);
        status = write_text(response, answer) != 0;
    } else if (strcmp(method, "records.page") == 0) {
        status = answer_page(params, entity, response);
    } else if (strcmp(method, "records.apply") == 0) {
        /* Nothing is changed online in this test: only an empty apply. */
        const char *changes = json_value(params, "changes");
        status = changes != NULL && strncmp(changes, "[]", 2) == 0
                     ? write_text(response, "{\"results\": []}") != 0
                     : refuse(response, "this host expects no online changes");
    } else if (strcmp(method, "sync.block") == 0) {
        atomic_fetch_add(&host->sync_blocks, 1);
        char reason[128];
        json_string(params, "reason", reason, sizeof reason);
        snprintf(answer, sizeof answer,
                 "{\"blocked\": true, \"reason\": \"%s\", \"blocked_at\": \"2026-01-01T00:00:00Z\"}",
                 reason);
        status = write_text(response, answer) != 0;
    } else if (strcmp(method, "connection.record") == 0) {
        pthread_mutex_lock(&host->lock);
        free(host->recorded_connection);
        host->recorded_connection = params;
        params = NULL;
        host->connection_records++;
        pthread_mutex_unlock(&host->lock);
        status = write_text(response, "{}") != 0;
    } else {
        status = refuse(response, "this host does not know the method");
    }
    free(params);
    return status;
}

/* [thread-safe] Only raises the flag: the main loop pumps. */
static int32_t OD_CALL host_request_pump(void *user_data) {
    host_state *host = user_data;
    atomic_store(&host->pump_requested, 1);
    return 0;
}

/* [thread-safe] Warnings and errors only, to keep the output readable. */
static int32_t OD_CALL host_log(void *user_data, const od_log_record *record) {
    (void)user_data;
    printf("log %u %s: %s\n", (unsigned)record->level, record->target, record->message);
    return 0;
}

/* [ui-thread] */
static int32_t OD_CALL host_on_event(void *user_data, const od_event *event) {
    host_state *host = user_data;
    if (!pthread_equal(pthread_self(), host->ui_thread)) {
        host->events_off_ui_thread++;
    }
    if (event->kind == OD_EVENT_WIZARD_CHANGED) {
        host->wizard_events++;
    } else if (event->kind == OD_EVENT_SYNC_STATE && event->payload_json != NULL) {
        json_string(event->payload_json, "state", host->sync_state, sizeof host->sync_state);
        printf("sync state %s\n", host->sync_state);
    }
    return 0;
}

static void OD_CALL host_user_data_free(void *user_data) {
    host_state *host = user_data;
    host->user_data_frees++;
}

/* ------------------------------------------------------- the main loop */

typedef struct {
    const od_plugin_api *api;
    od_plugin *plugin;
    host_state *host;
    /* The page name printed last. */
    char page_name[32];
} session;

/* Pumps when the plugin asked for it; otherwise waits a moment for it to
 * ask. 0 once `deadline` has passed. */
static int pump_once(session *s, time_t deadline) {
    if (atomic_exchange(&s->host->pump_requested, 0)) {
        od_result result = s->api->plugin_pump(s->plugin);
        expect(result == OD_RESULT_OK, "od_plugin_pump: %s", s->api->result_text(result));
        return time(NULL) < deadline;
    }
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
    return time(NULL) < deadline;
}

/* The current page (free with text_free), printed when its name changed;
 * NULL on failure. */
static od_text *read_page(session *s) {
    od_text *page = NULL;
    od_result result = s->api->plugin_wizard_page(s->plugin, &page);
    expect(result == OD_RESULT_OK && page != NULL, "od_plugin_wizard_page: %s",
           s->api->result_text(result));
    if (page == NULL) {
        return NULL;
    }
    char name[32];
    json_string(page->text, "page", name, sizeof name);
    if (strcmp(name, s->page_name) != 0) {
        printf("page %s\n", name);
        memcpy(s->page_name, name, sizeof name);
    }
    return page;
}

/* Pumps until the page is no longer busy (each change comes with
 * OD_EVENT_WIZARD_CHANGED) and, when `ready_action` is not NULL, until that
 * action is enabled. Returns the page (free with text_free) or NULL when
 * the deadline passed. */
static od_text *settled_page(session *s, const char *ready_action) {
    time_t deadline = time(NULL) + WAIT_SECONDS;
    for (;;) {
        od_text *page = read_page(s);
        if (page == NULL) {
            return NULL;
        }
        const char *actions = json_value(page->text, "actions");
        if (json_is(page->text, "busy", "false") &&
            (ready_action == NULL || (actions != NULL && json_is(actions, ready_action, "true")))) {
            return page;
        }
        s->api->text_free(page);
        int before = s->host->wizard_events;
        while (s->host->wizard_events == before) {
            if (!pump_once(s, deadline)) {
                expect(0, "the page %s settles within %d s", s->page_name, WAIT_SECONDS);
                return NULL;
            }
        }
    }
}

static void act(session *s, od_wizard_action action, const char *what) {
    od_result result = s->api->plugin_wizard_action(s->plugin, action);
    expect(result == OD_RESULT_OK, "%s on %s: %s", what, s->page_name,
           s->api->result_text(result));
}

static void set(session *s, const char *field, const char *value) {
    od_result result = s->api->plugin_wizard_set(s->plugin, field, value);
    expect(result == OD_RESULT_OK, "set %s on %s: %s", field, s->page_name,
           s->api->result_text(result));
}

/* Checks that the settled page is `name`, then frees it; 0 when not. */
static int on_page(session *s, const char *name) {
    od_text *page = settled_page(s, NULL);
    int holds = page != NULL && strcmp(s->page_name, name) == 0;
    expect(holds, "on the page %s, got %s: %s", name, s->page_name,
           page != NULL ? page->text : "(none)");
    if (page != NULL) {
        s->api->text_free(page);
    }
    return holds;
}

/* Logs in with `password` from the Online ID page; the page after it. */
static od_text *log_in(session *s, const char *password) {
    set(s, "email", s->host->email);
    set(s, "password", password);
    act(s, OD_WIZARD_NEXT, "log in");
    od_text *busy = read_page(s);
    if (busy != NULL) {
        printf("logging in: busy %s\n", json_is(busy->text, "busy", "true") ? "true" : "false");
        expect(strstr(busy->text, password) == NULL, "no page shows the password");
        s->api->text_free(busy);
    }
    return settled_page(s, NULL);
}

/* The wizard from the first page to done; 1 when the company is connected. */
static int walk_wizard(session *s, const char *password) {
    const od_plugin_api *api = s->api;
    od_result result = api->plugin_wizard_open(s->plugin);
    expect(result == OD_RESULT_OK, "od_plugin_wizard_open: %s", api->result_text(result));
    if (result != OD_RESULT_OK) {
        return 0;
    }

    /* Prerequisites: the reachability check finishes in the background. */
    od_text *page = settled_page(s, "next");
    if (page == NULL) {
        return 0;
    }
    expect(strcmp(s->page_name, "prerequisites") == 0, "first the prerequisites");
    expect(strstr(page->text, "\"state\":\"failed\"") == NULL, "every prerequisite passes: %s",
           page->text);
    api->text_free(page);
    act(s, OD_WIZARD_NEXT, "next");
    if (!on_page(s, "welcome")) {
        return 0;
    }
    act(s, OD_WIZARD_NEXT, "next");
    page = settled_page(s, NULL);
    if (page == NULL) {
        return 0;
    }
    const char *email_field = page_field(page->text, "email");
    char email[256] = "";
    if (email_field != NULL) {
        json_string(email_field, "value", email, sizeof email);
    }
    printf("online_id e-mail suggested: %s\n", email);
    api->text_free(page);

    /* A wrong password: the Online ID page again, the error at the field. */
    page = log_in(s, "not-the-password");
    if (page == NULL) {
        return 0;
    }
    const char *password_field = page_field(page->text, "password");
    char field_error[512] = "";
    if (password_field != NULL) {
        json_string(password_field, "error", field_error, sizeof field_error);
    }
    expect(strcmp(s->page_name, "online_id") == 0, "still on the Online ID page");
    expect(field_error[0] != '\0', "the password field shows an error: %s", page->text);
    printf("wrong password: page %s, password error: %s\n", s->page_name, field_error);
    api->text_free(page);

    /* The right one. */
    page = log_in(s, password);
    if (page == NULL) {
        return 0;
    }
    char error[512];
    json_string(page->text, "error", error, sizeof error);
    expect(strcmp(s->page_name, "company") == 0, "logged in: the company page, got %s: %s",
           s->page_name, error);
    api->text_free(page);
    act(s, OD_WIZARD_NEXT, "next");
    if (!on_page(s, "start")) {
        return 0;
    }
    set(s, "when", "now");
    act(s, OD_WIZARD_NEXT, "next");
    if (!on_page(s, "finish")) {
        return 0;
    }
    act(s, OD_WIZARD_FINISH, "finish");
    page = settled_page(s, NULL);
    if (page == NULL) {
        return 0;
    }
    int done = json_is(page->text, "done", "true");
    json_string(page->text, "error", error, sizeof error);
    printf("finish: done %s, error %s\n", done ? "true" : "false",
           error[0] != '\0' ? error : "(none)");
    expect(done, "the page says done: %s", page->text);
    api->text_free(page);

    result = api->plugin_wizard_close(s->plugin);
    expect(result == OD_RESULT_OK, "od_plugin_wizard_close: %s", api->result_text(result));
    return done;
}

/* Pumps until the first synchronisation is done; 1 when it is. */
static int wait_for_first_sync(session *s) {
    time_t deadline = time(NULL) + WAIT_SECONDS;
    for (;;) {
        od_sync_status *status = NULL;
        od_result result = s->api->plugin_sync_status(s->plugin, &status);
        expect(result == OD_RESULT_OK && status != NULL, "od_plugin_sync_status: %s",
               s->api->result_text(result));
        if (status == NULL) {
            return 0;
        }
        if (status->first_sync_done) {
            printf("first sync done: state %s, error %s\n", status->state_name,
                   status->error != NULL ? status->error : "(none)");
            s->api->sync_status_free(status);
            return 1;
        }
        s->api->sync_status_free(status);
        if (!pump_once(s, deadline)) {
            expect(0, "the first sync within %d s", WAIT_SECONDS);
            return 0;
        }
    }
}

/* Stops synchronisation and pumps until the engine says it stopped. */
static void stop_sync(session *s) {
    od_result result = s->api->plugin_sync_stop(s->plugin);
    expect(result == OD_RESULT_OK, "od_plugin_sync_stop: %s", s->api->result_text(result));
    time_t deadline = time(NULL) + WAIT_SECONDS;
    while (strcmp(s->host->sync_state, "stopped") != 0) {
        if (!pump_once(s, deadline)) {
            expect(0, "the state stopped within %d s", WAIT_SECONDS);
            return;
        }
    }
    printf("sync stopped\n");
}

static void run(const od_plugin_api *api, host_state *host, const char *service_url,
                const char *data_dir, const char *password) {
    od_host_api table;
    memset(&table, 0, sizeof table);
    table.struct_size = sizeof table;
    table.abi_major = OD_VERSION_MAJOR;
    table.abi_minor = OD_VERSION_MINOR;
    table.user_data = host;
    table.user_data_free = host_user_data_free;
    table.log = host_log;
    table.log_level = OD_LOG_LEVEL_WARN;
    table.request = host_request;
    table.request_pump = host_request_pump;
    table.on_event = host_on_event;
    table.data_dir = data_dir;
    table.trace_log_level = OD_LOG_LEVEL_OFF;
    table.service_url = service_url;

    session s;
    memset(&s, 0, sizeof s);
    s.api = api;
    s.host = host;
    od_result result = api->plugin_new(&table, &s.plugin);
    expect(result == OD_RESULT_OK, "od_plugin_new: %s", api->result_text(result));
    if (result != OD_RESULT_OK) {
        return;
    }

    int connected = walk_wizard(&s, password);
    printf("wizard changed events: %d\n", host->wizard_events);
    if (connected) {
        pthread_mutex_lock(&host->lock);
        printf("connection.record %d time(s): %s\n", host->connection_records,
               host->recorded_connection != NULL ? host->recorded_connection : "(none)");
        pthread_mutex_unlock(&host->lock);
        if (wait_for_first_sync(&s)) {
            printf("summary: connected, first sync done, sync.block %d, sync.unblock %d\n",
                   atomic_load(&host->sync_blocks), atomic_load(&host->sync_unblocks));
        }
        stop_sync(&s);
    }
    expect(host->events_off_ui_thread == 0, "events arrive on the UI thread only");

    result = api->plugin_free(s.plugin);
    expect(result == OD_RESULT_OK, "od_plugin_free: %s", api->result_text(result));
    expect(host->user_data_frees == 1, "user_data_free once, got %d", host->user_data_frees);
    printf("plugin freed\n");
}

/* ------------------------------------------------------------ utilities */

/* The whole file as a NUL-terminated string; NULL on failure. */
static char *read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        return NULL;
    }
    size_t size = 0;
    size_t capacity = 4096;
    char *text = malloc(capacity);
    while (text != NULL) {
        size += fread(text + size, 1, capacity - size - 1, file);
        if (size < capacity - 1) {
            break;
        }
        capacity *= 2;
        char *grown = realloc(text, capacity);
        if (grown == NULL) {
            free(text);
        }
        text = grown;
    }
    int failed = ferror(file);
    fclose(file);
    if (text == NULL || failed) {
        free(text);
        return NULL;
    }
    text[size] = '\0';
    return text;
}

/* {"documents": ["<document as a JSON string>"]}; NULL when out of memory. */
static char *licence_answer(const char *document) {
    static const char head[] = "{\"documents\": [\"";
    static const char tail[] = "\"]}";
    size_t capacity = sizeof head + 6 * strlen(document) + sizeof tail;
    char *json = malloc(capacity);
    if (json == NULL) {
        return NULL;
    }
    char *out = json;
    memcpy(out, head, sizeof head - 1);
    out += sizeof head - 1;
    for (const unsigned char *in = (const unsigned char *)document; *in != '\0'; in++) {
        if (*in == '"' || *in == '\\') {
            *out++ = '\\';
            *out++ = (char)*in;
        } else if (*in < 0x20) {
            out += sprintf(out, "\\u%04x", (unsigned)*in);
        } else {
            *out++ = (char)*in;
        }
    }
    memcpy(out, tail, sizeof tail);
    return json;
}

int main(int argc, char **argv) {
    const char *password = getenv("OD_ONLINE_ID_PASSWORD");
    if (argc != 6 || password == NULL) {
        fprintf(stderr,
                "usage: OD_ONLINE_ID_PASSWORD=... %s <plugin-library> <licence-file>"
                " <service-url> <data-dir> <online-id-email>\n",
                argv[0]);
        return 2;
    }
    char *document = read_file(argv[2]);
    if (document == NULL) {
        fprintf(stderr, "cannot read the licence file %s\n", argv[2]);
        return 2;
    }
    static host_state host;
    host.ui_thread = pthread_self();
    atomic_init(&host.pump_requested, 0);
    atomic_init(&host.requests, 0);
    atomic_init(&host.sync_blocks, 0);
    atomic_init(&host.sync_unblocks, 0);
    pthread_mutex_init(&host.lock, NULL);
    host.email = argv[5];
    host.licence_answer = licence_answer(document);
    free(document);
    if (host.licence_answer == NULL) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }

    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
        free(host.licence_answer);
        return 2;
    }
    void *symbol = dlsym(library, "od_entry");
    od_entry_fn entry = NULL;
    memcpy(&entry, &symbol, sizeof entry);
    expect(entry != NULL, "the library exports od_entry");
    const od_plugin_api *api = NULL;
    if (entry != NULL) {
        od_result result = entry(OD_VERSION_MAJOR, OD_VERSION_MINOR, &api);
        expect(result == OD_RESULT_OK && api != NULL, "od_entry accepts ABI %d.%d",
               OD_VERSION_MAJOR, OD_VERSION_MINOR);
    }
    if (api != NULL) {
        expect(api->struct_size >= sizeof(od_plugin_api),
               "the table has every entry of ABI %d.%d (the wizard's)", OD_VERSION_MAJOR,
               OD_VERSION_MINOR);
        if (api->struct_size >= sizeof(od_plugin_api)) {
            run(api, &host, argv[3], argv[4], password);
        }
    }

    expect(dlclose(library) == 0, "dlclose: %s", dlerror());
    free(host.licence_answer);
    free(host.recorded_connection);
    pthread_mutex_destroy(&host.lock);
    printf("host requests answered: %d\n", atomic_load(&host.requests));
    if (failed_expectations > 0) {
        printf("%d expectation(s) failed\n", failed_expectations);
        return 1;
    }
    printf("all expectations held\n");
    return 0;
}
