/* SPDX-License-Identifier: MIT */
/* Parse, listen, serve, report to the service manager, and stop cleanly. Nothing else. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "audit-ids.h"
#include "audit.h"
#include "config-build.h"
#include "config.h"
#include "fd-util.h"
#include "front.h"
#include "listener.h"
#include "log.h"
#include "upstream.h"

static char **arg_listen = NULL;
static size_t arg_n_listen = 0;
static const char *arg_env_file = NULL;
static bool arg_check_config = false;
static LogTarget arg_log_target = LOG_TARGET_AUTO;

static void help(void) {
        printf("Usage: %s [OPTIONS]\n\n"
               "Serve the Docker Engine API to clients, letting through only the calls the policy allows.\n\n"
               "  -l --listen=SPEC        Listen on tcp:HOST:PORT, tcp:[ADDR]:PORT or\n"
               "                          unix:PATH[,mode=0660][,group=NAME] (repeatable). Without it the\n"
               "                          sockets come from systemd socket activation.\n"
               "  -e --env-file=PATH      Read the policy from this EnvironmentFile (re-read on SIGHUP)\n"
               "     --check-config       Print the effective policy, or the error, and exit\n"
               "     --log-target=TARGET  auto, journal or stderr (default: auto)\n"
               "  -h --help               Show this help and exit\n"
               "     --version            Show the version and exit\n\n"
               "The policy comes from the environment (EVENTS, PING, VERSION, CONTAINERS, POST, ALLOW_*...),\n"
               "then from --env-file. See docker-socket-proxy(8) and docker-socket-proxy.env(5).\n",
               program_invocation_short_name);
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_CHECK_CONFIG = 0x100,
                ARG_LOG_TARGET,
                ARG_VERSION,
        };
        static const struct option options[] = {
                { "listen", required_argument, NULL, 'l' },
                { "env-file", required_argument, NULL, 'e' },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "log-target", required_argument, NULL, ARG_LOG_TARGET },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "l:e:h", options, NULL)) >= 0)
                switch (c) {
                case 'l': {
                        char **l = realloc(arg_listen, (arg_n_listen + 1) * sizeof(char *));
                        if (!l)
                                return -ENOMEM;
                        arg_listen = l;
                        arg_listen[arg_n_listen++] = optarg;
                        break;
                }
                case 'e':
                        arg_env_file = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        arg_check_config = true;
                        break;
                case ARG_LOG_TARGET:
                        arg_log_target = log_target_from_string(optarg);
                        if (arg_log_target == _LOG_TARGET_MAX) {
                                fprintf(stderr, "Unknown log target '%s': use auto, journal or stderr.\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("docker-socket-proxy %s\n", PROJECT_VERSION);
                        return 0;
                case '?':
                        return -EINVAL;
                default:
                        assert_not_reached();
                }

        if (optind < argc) {
                fprintf(stderr, "Unexpected argument '%s'; see --help.\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

/* Builds a Config from the environment and the policy file, printing what is wrong. */
static int load_config(Config **ret) {
        _cleanup_(strv_freep) char **warnings = NULL;
        _cleanup_free_ char *error = NULL;
        Config *c;
        int r;

        c = calloc(1, sizeof(Config));
        if (!c)
                return log_error_errno(ENOMEM, "Out of memory.");
        r = config_init(c);
        if (r >= 0)
                r = config_load_environment(c, environ, &error);
        if (r >= 0 && arg_env_file)
                r = config_load_file(c, arg_env_file, &warnings, &error);
        for (char **w = warnings; w && *w; w++)
                log_warning("%s", *w);
        if (r < 0) {
                if (error)
                        log_error("%s", error);
                else
                        log_error_errno(r, "Failed to load the configuration: %m");
                config_done(c);
                free(c);
                return r;
        }
        *ret = c;
        return 0;
}

static void config_free(Config *c) {
        if (c) {
                config_done(c);
                free(c);
        }
}

static const char *format_duration(usec_t u, char buf[static 32]) {
        if (u % USEC_PER_SEC == 0)
                snprintf(buf, 32, "%llus", u / USEC_PER_SEC);
        else
                snprintf(buf, 32, "%llums", u / USEC_PER_MSEC);
        return buf;
}

static void print_config(const Config *c) {
        char a[32], b[32], d[32], h[32];

        printf("# docker-socket-proxy %s: the effective policy, one rule a line\n", PROJECT_VERSION);
        policy_describe(&c->policy, stdout);
        printf("# settings\n"
               "SOCKET_PATH=%s\nLOG_LEVEL=%s\nSOCKET_PROXY_TIMEOUT=%s\nSOCKET_PROXY_KEEPALIVE=%s\n"
               "SOCKET_PROXY_DRAIN_TIMEOUT=%s\nSOCKET_PROXY_HEADER_TIMEOUT=%s\nSOCKET_PROXY_MAX_CONNECTIONS=%u\n"
               "SOCKET_PROXY_MAX_LISTENER_CONNECTIONS=%u\nSOCKET_PROXY_MAX_TARGET_BYTES=%u\n"
               "SOCKET_PROXY_MAX_HEADER_BYTES=%u\nDISABLE_IPV6=%d\n",
               c->socket_path, log_level_to_string(c->log_level), format_duration(c->timeout_usec, a),
               format_duration(c->keepalive_usec, b), format_duration(c->drain_usec, d),
               format_duration(c->header_timeout_usec, h), c->max_connections, c->max_listener_connections,
               c->max_target_bytes, c->max_header_bytes, c->disable_ipv6);
}

static void raise_nofile(void) {
        struct rlimit rl;

        /* Every client and every daemon connection is an fd: use all we are allowed. */
        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* Says at start-up what every request would otherwise find out alone; never fatal, since
 * the daemon may well start after us. */
static void probe_daemon(const Config *c) {
        int r = upstream_probe(c->socket_path);

        if (r == -EACCES || r == -EPERM) {
                char hint[768];
                upstream_describe_access(c->socket_path, hint, sizeof(hint));
                log_warning("Cannot connect to the Docker daemon at %s: permission denied; %s.", c->socket_path, hint);
        } else if (r < 0)
                log_notice_errno(r, "The Docker daemon at %s cannot be reached yet (%m); requests get 502 until it can.",
                                 c->socket_path);
}

static void notify_status(Server *s, size_t n_listeners) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static char last[256];
        Counters *k = &s->counters;
        char status[256];

        snprintf(status, sizeof(status), "STATUS=Serving %zu listener(s): %lu connections, %lu allowed, %lu refused, %lu tunnels",
                 n_listeners, atomic_load(&k->connections), atomic_load(&k->allowed), atomic_load(&k->refused),
                 atomic_load(&k->tunnels));
        /* Only what changed: an idle proxy stays quiet. The loop's thread calls this, and
         * this thread once at start. */
        pthread_mutex_lock(&lock);
        if (!streq(status, last)) {
                sd_notify(false, status);
                memcpy(last, status, sizeof(last));
        }
        pthread_mutex_unlock(&lock);
}

/* The loop's housekeeping, in its thread: about once a second while anything is open. */
static bool on_server_tick(Server *s, void *userdata) {
        const size_t *n_listeners = userdata;

        notify_status(s, *n_listeners);
        return audit_flush_suppressed();
}

static void reload(Server *s) {
        Config *c = NULL;

        if (load_config(&c) < 0) {
                log_warning("Keeping the previous policy.");
                return;
        }
        log_set_max_level(c->log_level);
        config_free(server_swap_config(s, c));
        log_struct(LOG_INFO, DSP_MESSAGE_RELOADED, "Reloaded the policy.", NULL);
}

static int run(int argc, char *argv[]) {
        Listener *listeners = NULL;
        size_t n_listeners = 0;
        Server *server = NULL;
        Config *config = NULL;
        _cleanup_free_ char *error = NULL;
        usec_t watchdog_usec = 0, next_watchdog = 0;
        sigset_t mask;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;

        log_open(arg_check_config ? LOG_TARGET_STDERR : arg_log_target);

        r = load_config(&config);
        if (r < 0)
                return r;
        if (arg_check_config) {
                print_config(config);
                config_free(config);
                return 0;
        }
        log_set_max_level(config->log_level);

        r = listeners_from_activation(&listeners, &n_listeners, &error);
        if (r < 0) {
                log_error("%s", error ?: "Cannot take the sockets passed by systemd.");
                goto finish;
        }
        for (size_t i = 0; i < arg_n_listen; i++) {
                free(error);
                error = NULL;
                r = listener_bind(arg_listen[i], config->disable_ipv6, &listeners, &n_listeners, &error);
                if (r < 0) {
                        log_error("%s", error ?: "Cannot listen.");
                        goto finish;
                }
        }
        if (n_listeners == 0) {
                r = log_error_errno(EINVAL, "No socket to listen on: start docker-socket-proxy.socket (systemd socket "
                                    "activation) or pass --listen unix:/run/docker-socket-proxy.sock or "
                                    "--listen tcp:127.0.0.1:2375.");
                goto finish;
        }

        raise_nofile();
        probe_daemon(config);

        /* Blocked before any thread exists, so that only this one takes them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = server_new(&server, config);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the server: %m");
                goto finish;
        }
        config = NULL; /* the server owns it now */
        server->tick = on_server_tick;
        server->tick_userdata = &n_listeners;
        free(error);
        error = NULL;
        r = server_start(server, listeners, n_listeners, &error);
        if (r < 0) {
                log_error("%s", error ?: "Cannot start serving.");
                goto finish;
        }

        for (size_t i = 0; i < n_listeners; i++)
                log_debug("Listening on '%s'.", listeners[i].name);
        log_struct(LOG_INFO, DSP_MESSAGE_STARTED, "Serving the Docker API with the configured policy.", NULL);
        sd_notify(false, "READY=1");
        notify_status(server, n_listeners);

        {
                uint64_t u = 0;
                watchdog_usec = sd_watchdog_enabled(false, &u) > 0 ? (usec_t) u : 0;
        }

        /* This thread only takes signals and feeds the watchdog: without one it sleeps until a
         * signal comes. The loop does the periodic work, and only while there is some. */
        for (;;) {
                siginfo_t si;
                int sig;

                if (watchdog_usec > 0) {
                        usec_t now = now_usec(), wait;
                        struct timespec ts;

                        if (now >= next_watchdog) {
                                if (server_alive(server))
                                        sd_notify(false, "WATCHDOG=1");
                                next_watchdog = now + watchdog_usec / 2;
                        }
                        wait = next_watchdog - now;
                        ts = (struct timespec) { .tv_sec = (time_t) (wait / USEC_PER_SEC),
                                                 .tv_nsec = (long) (wait % USEC_PER_SEC) * 1000 };
                        sig = sigtimedwait(&mask, &si, &ts);
                } else
                        sig = sigwaitinfo(&mask, &si);
                if (sig < 0)
                        continue; /* EAGAIN: the timer; EINTR */
                if (sig == SIGHUP) {
                        sd_notify(false, "RELOADING=1");
                        reload(server);
                        sd_notify(false, "READY=1");
                        continue;
                }
                break;
        }

        {
                usec_t drain;

                sd_notify(false, "STOPPING=1\nSTATUS=Stopping: finishing requests in flight.");
                pthread_rwlock_rdlock(&server->config_lock);
                drain = server->config->drain_usec;
                pthread_rwlock_unlock(&server->config_lock);
                server_stop(server, drain);
        }
        log_struct(LOG_INFO, DSP_MESSAGE_STOPPED, "Stopped.", NULL);
        r = 0;

finish:
        if (server)
                config_free(server_swap_config(server, NULL));
        server_free(server);
        config_free(config);
        listeners_free(listeners, n_listeners);
        free(arg_listen);
        return r;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
