/* plumb config: the resolved configuration, secrets redacted. */
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/cli.h"
#include "reconciler/load.h"
#include "state/config.h"
#include "state/escape.h"
#include "state/json_text.h"

static const char *secret_state(const struct config *c, const char *secret)
{
	int available = 0;
	const char *v = config_secret_value(c, secret, &available);

	if (!v)
		return c->secrets && secrets_skipped(c->secrets) ? "unavailable" : "not defined";
	return available ? "set" : "unavailable";
}

/* A clear env value as it may be shown: values from ERB ENV or a command are
 * hidden (they may be credentials), placeholders say why. */
static const char *clear_shown(const struct cfg_env *e, size_t i)
{
	if (strvec_contains(&e->unavailable, e->clear.keys[i]))
		return "(unavailable: ERB ENV/command not evaluated in an untrusted run)";
	if (strvec_contains(&e->sensitive, e->clear.keys[i]))
		return "(from ERB ENV or a command; value hidden)";
	return e->clear.vals[i];
}

static void print_env(FILE *f, const struct config *c, const struct cfg_env *e, const char *indent)
{
	for (size_t i = 0; i < e->clear.n; i++)
		fprintf(f, "%s%s=%s\n", indent, e->clear.keys[i], clear_shown(e, i));
	for (size_t i = 0; i < e->secret.n; i++) {
		const char *sec = e->secret.vals[i];
		if (strcmp(sec, e->secret.keys[i]) == 0)
			fprintf(f, "%s%s=(secret, %s; value hidden)\n", indent, e->secret.keys[i],
			       secret_state(c, sec));
		else
			fprintf(f, "%s%s=(secret %s, %s; value hidden)\n", indent, e->secret.keys[i], sec,
			       secret_state(c, sec));
	}
}

static void print_kvs_line(FILE *f, const char *label, const struct kvs *m, const char *indent)
{
	if (!m->n)
		return;
	fprintf(f, "%s%s:", indent, label);
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, " %s=%s", m->keys[i], m->vals[i]);
	fputc('\n', f);
}

static void print_proxy(FILE *f, const struct cfg_proxy *p, const char *indent)
{
	fprintf(f, "%sproxy:", indent);
	if (p->hosts.n) {
		fprintf(f, " host");
		for (size_t i = 0; i < p->hosts.n; i++)
			fprintf(f, "%s%s", i ? "," : " ", p->hosts.v[i]);
	}
	fprintf(f, " ssl=%s", p->ssl == 1 ? (p->ssl_certificate_secret ? "custom certificate" : "automatic") : "off");
	fprintf(f, " app_port=%d", p->app_port ? p->app_port : 80);
	fprintf(f, " healthcheck=%s", p->healthcheck_path ? p->healthcheck_path : "/up");
	if (p->response_timeout)
		fprintf(f, " response_timeout=%d", p->response_timeout);
	for (size_t i = 0; i < p->path_prefixes.n; i++)
		fprintf(f, " path_prefix=%s", p->path_prefixes.v[i]);
	fputc('\n', f);
}

static void print_text(FILE *f, const struct config *c)
{
	const struct cfg_registry *r = &c->registry;

	fprintf(f, "Configuration: %s%s%s\n", c->file, c->destination ? " + destination " : "",
	       c->destination ? c->destination : "");
	fprintf(f, "Service: %s\n", c->service);
	fprintf(f, "Image: %s%s%s\n", r->server ? r->server : "", r->server ? "/" : "", c->image);
	if (r->local)
		fprintf(f, "Registry: %s (local registry: hosts pull through an SSH reverse tunnel)\n", r->server);
	else
		fprintf(f, "Registry: %s (user %s%s, password %s)\n", r->server ? r->server : "Docker Hub",
		       r->username ? r->username : r->username_secret ? "from secret " : "",
		       r->username ? "" : r->username_secret ? r->username_secret : "",
		       r->password_secret ? (strcmp(secret_state(c, r->password_secret), "set") == 0 ?
						     "from secret, hidden" :
						     "from secret, unavailable") :
					    "given in the file, hidden");
	fprintf(f, "Primary role: %s\n", c->primary_role);
	fprintf(f, "\nRoles:\n");
	for (size_t i = 0; i < c->nroles; i++) {
		const struct cfg_role *ro = &c->roles[i];
		struct cfg_env env = { 0 };
		struct kvs labels = { 0 };
		struct cfg_logging lg = { 0 };

		fprintf(f, "  %s%s\n", ro->name, strcmp(ro->name, c->primary_role) == 0 ? " (primary)" : "");
		fprintf(f, "    hosts:");
		for (size_t j = 0; j < ro->nhosts; j++) {
			fprintf(f, " %s", ro->hosts[j].addr);
			if (ro->hosts[j].tags.n) {
				fprintf(f, " [");
				for (size_t t = 0; t < ro->hosts[j].tags.n; t++)
					fprintf(f, "%s%s", t ? ", " : "", ro->hosts[j].tags.v[t]);
				fprintf(f, "]");
			}
		}
		fputc('\n', f);
		fprintf(f, "    cmd: %s\n", ro->cmd ? ro->cmd : "(image default)");
		config_role_env(c, ro, NULL, &env);
		if (env.clear.n || env.secret.n) {
			fprintf(f, "    env:\n");
			print_env(f, c, &env, "      ");
		}
		for (size_t j = 0; j < ro->nhosts; j++) {
			struct cfg_env henv = { 0 };
			if (!ro->hosts[j].tags.n)
				continue;
			config_role_env(c, ro, ro->hosts[j].addr, &henv);
			fprintf(f, "    env on %s:\n", ro->hosts[j].addr);
			print_env(f, c, &henv, "      ");
			cfg_env_release(&henv);
		}
		config_role_labels(c, ro, &labels);
		print_kvs_line(f, "labels", &labels, "    ");
		print_kvs_line(f, "options", &ro->options, "    ");
		config_role_logging(c, ro, &lg);
		if (lg.set) {
			fprintf(f, "    logging: driver=%s", lg.driver ? lg.driver : "(default)");
			for (size_t k = 0; k < lg.options.n; k++)
				fprintf(f, " %s=%s", lg.options.keys[k], lg.options.vals[k]);
			fputc('\n', f);
		}
		if (ro->running_proxy)
			print_proxy(f, &ro->proxy, "    ");
		else
			fprintf(f, "    proxy: off\n");
		cfg_env_release(&env);
		kvs_release(&labels);
		cfg_logging_release(&lg);
	}
	if (c->volumes.n) {
		fprintf(f, "\nVolumes:\n");
		for (size_t i = 0; i < c->volumes.n; i++)
			fprintf(f, "  %s\n", c->volumes.v[i]);
	}
	if (c->naccessories) {
		fprintf(f, "\nAccessories:\n");
		for (size_t i = 0; i < c->naccessories; i++) {
			const struct cfg_accessory *a = &c->accessories[i];
			fprintf(f, "  %s (container %s, image %s)\n", a->name, a->service, a->image ? a->image : "?");
			fprintf(f, "    hosts:");
			for (size_t j = 0; j < a->hosts.n; j++)
				fprintf(f, " %s", a->hosts.v[j]);
			fputc('\n', f);
			for (size_t j = 0; j < a->ports.n; j++)
				fprintf(f, "    port: %s\n", a->ports.v[j]);
			if (a->cmd)
				fprintf(f, "    cmd: %s\n", a->cmd);
			if (a->env.clear.n || a->env.secret.n) {
				fprintf(f, "    env:\n");
				print_env(f, c, &a->env, "      ");
			}
			for (size_t j = 0; j < a->ndirectories; j++)
				fprintf(f, "    directory: %s -> %s ($HOME/%s/%s on the host)\n", a->directories[j].local,
				       a->directories[j].remote, a->service, a->directories[j].local);
			for (size_t j = 0; j < a->nfiles; j++)
				fprintf(f, "    file: %s -> %s\n", a->files[j].local, a->files[j].remote);
			for (size_t j = 0; j < a->volumes.n; j++)
				fprintf(f, "    volume: %s\n", a->volumes.v[j]);
			print_kvs_line(f, "labels", &a->labels, "    ");
			print_kvs_line(f, "options", &a->options, "    ");
			if (strcmp(a->network, "kamal") != 0)
				fprintf(f, "    network: %s\n", a->network);
		}
	}
	fprintf(f, "\nSSH: %s@<host>:%d", c->ssh.user, c->ssh.port);
	if (c->ssh.proxy)
		fprintf(f, " via %s", c->ssh.proxy);
	if (c->ssh.proxy_command)
		fprintf(f, " via proxy command%s", c->trust.trusted ? "" : " (not used: untrusted)");
	fputc('\n', f);
	fprintf(f, "Boot: %s", c->boot.limit ? "" : "all hosts at once");
	if (c->boot.limit)
		fprintf(f, "%d%s at a time", c->boot.limit, c->boot.limit_percent ? "%" : " hosts");
	if (c->boot.wait)
		fprintf(f, ", wait %ds between groups", c->boot.wait);
	fputc('\n', f);
	fprintf(f, "Retain containers: %d; readiness delay %ds; deploy timeout %ds; drain timeout %ds\n",
	       c->retain_containers, c->readiness_delay, c->deploy_timeout, c->drain_timeout);
}

/*
 * Writes the text form to stdout with every byte that a terminal could act on
 * escaped (control characters other than newline and tab, DEL, C1 controls,
 * bytes that are not valid UTF-8): the strings come from the repository, which
 * a pull request controls.
 */
static int print_text_escaped(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	struct sbuf sb;
	int rc;

	if (!mem)
		return REC_EXIT_ERROR;
	print_text(mem, c);
	if (fclose(mem) != 0) {
		free(buf);
		return REC_EXIT_ERROR;
	}
	sbuf_init(&sb, 0);
	esc_lines(&sb, buf, len);
	rc = fwrite(sb.buf, 1, sb.len, stdout) == sb.len ? REC_EXIT_OK : REC_EXIT_ERROR;
	sbuf_release(&sb);
	free(buf);
	return rc;
}

static json_t *env_json(const struct config *c, const struct cfg_env *e)
{
	json_t *o = json_object(), *clear = json_object(), *sec = json_object();

	for (size_t i = 0; i < e->clear.n; i++)
		jtext_set(clear, e->clear.keys[i], jtext(clear_shown(e, i)));
	for (size_t i = 0; i < e->secret.n; i++) {
		json_t *s = json_object();
		json_object_set_new(s, "secret", jtext(e->secret.vals[i]));
		json_object_set_new(s, "state", jtext(secret_state(c, e->secret.vals[i])));
		jtext_set(sec, e->secret.keys[i], s);
	}
	json_object_set_new(o, "clear", clear);
	json_object_set_new(o, "secret", sec);
	return o;
}

static json_t *proxy_json(const struct cfg_proxy *p)
{
	json_t *o = json_object();
	json_object_set_new(o, "hosts", jtext_strvec(&p->hosts));
	json_object_set_new(o, "ssl", json_boolean(p->ssl == 1));
	json_object_set_new(o, "custom_certificate", json_boolean(p->ssl_certificate_secret != NULL));
	json_object_set_new(o, "app_port", json_integer(p->app_port ? p->app_port : 80));
	json_object_set_new(o, "healthcheck_path", jtext(p->healthcheck_path ? p->healthcheck_path : "/up"));
	json_object_set_new(o, "path_prefixes", jtext_strvec(&p->path_prefixes));
	json_object_set_new(o, "run", jtext_kvs(&p->run));
	return o;
}

static json_t *config_json(const struct config *c)
{
	json_t *o = json_object(), *roles = json_array(), *accs = json_array(), *reg = json_object();
	json_t *off = json_array();

	json_object_set_new(o, "file", jtext(c->file));
	json_object_set_new(o, "destination", jtext(c->destination));
	json_object_set_new(o, "service", jtext(c->service));
	json_object_set_new(o, "image", jtext(c->image));
	json_object_set_new(reg, "server", jtext(c->registry.server));
	json_object_set_new(reg, "local", json_boolean(c->registry.local));
	json_object_set_new(reg, "username", jtext(c->registry.username));
	json_object_set_new(reg, "password", jtext(c->registry.password_secret ?
		secret_state(c, c->registry.password_secret) : c->registry.password ? "hidden" : "none"));
	json_object_set_new(o, "registry", reg);
	json_object_set_new(o, "primary_role", jtext(c->primary_role));
	for (size_t i = 0; i < c->nroles; i++) {
		const struct cfg_role *r = &c->roles[i];
		json_t *ro = json_object(), *hosts = json_array();
		struct cfg_env env = { 0 };
		struct kvs labels = { 0 };

		for (size_t j = 0; j < r->nhosts; j++) {
			json_t *h = json_object();
			struct cfg_env henv = { 0 };
			json_object_set_new(h, "host", jtext(r->hosts[j].addr));
			json_object_set_new(h, "tags", jtext_strvec(&r->hosts[j].tags));
			config_role_env(c, r, r->hosts[j].addr, &henv);
			json_object_set_new(h, "env", env_json(c, &henv));
			cfg_env_release(&henv);
			json_array_append_new(hosts, h);
		}
		json_object_set_new(ro, "name", jtext(r->name));
		json_object_set_new(ro, "hosts", hosts);
		json_object_set_new(ro, "cmd", jtext(r->cmd));
		config_role_env(c, r, NULL, &env);
		json_object_set_new(ro, "env", env_json(c, &env));
		config_role_labels(c, r, &labels);
		json_object_set_new(ro, "labels", jtext_kvs(&labels));
		json_object_set_new(ro, "options", jtext_kvs(&r->options));
		json_object_set_new(ro, "proxy", r->running_proxy ? proxy_json(&r->proxy) : json_false());
		cfg_env_release(&env);
		kvs_release(&labels);
		json_array_append_new(roles, ro);
	}
	json_object_set_new(o, "roles", roles);
	json_object_set_new(o, "volumes", jtext_strvec(&c->volumes));
	for (size_t i = 0; i < c->naccessories; i++) {
		const struct cfg_accessory *a = &c->accessories[i];
		json_t *ao = json_object(), *dirs = json_array();
		json_object_set_new(ao, "name", jtext(a->name));
		json_object_set_new(ao, "service", jtext(a->service));
		json_object_set_new(ao, "image", jtext(a->image));
		json_object_set_new(ao, "hosts", jtext_strvec(&a->hosts));
		json_object_set_new(ao, "ports", jtext_strvec(&a->ports));
		json_object_set_new(ao, "cmd", jtext(a->cmd));
		json_object_set_new(ao, "env", env_json(c, &a->env));
		for (size_t j = 0; j < a->ndirectories; j++) {
			json_t *d = json_object();
			json_object_set_new(d, "local", jtext(a->directories[j].local));
			json_object_set_new(d, "remote", jtext(a->directories[j].remote));
			json_array_append_new(dirs, d);
		}
		json_object_set_new(ao, "directories", dirs);
		json_object_set_new(ao, "volumes", jtext_strvec(&a->volumes));
		json_object_set_new(ao, "labels", jtext_kvs(&a->labels));
		json_object_set_new(ao, "options", jtext_kvs(&a->options));
		json_object_set_new(ao, "network", jtext(a->network));
		json_array_append_new(accs, ao);
	}
	json_object_set_new(o, "accessories", accs);
	{
		/* built key by key: json_pack would fail as a whole on one bad string */
		json_t *ssh = json_object();
		json_object_set_new(ssh, "user", jtext(c->ssh.user));
		json_object_set_new(ssh, "port", json_integer(c->ssh.port));
		json_object_set_new(ssh, "proxy", jtext(c->ssh.proxy));
		json_object_set_new(o, "ssh", ssh);
	}
	json_object_set_new(o, "boot", json_pack("{s:i, s:b, s:i}", "limit", c->boot.limit, "limit_percent",
					       c->boot.limit_percent, "wait", c->boot.wait));
	json_object_set_new(o, "retain_containers", json_integer(c->retain_containers));
	json_object_set_new(o, "trusted", json_boolean(c->trust.trusted));
	for (int b = 0; b < TRUST_OFF_COUNT; b++)
		if (c->trust.turned_off & (1u << b))
			json_array_append_new(off, jtext(trust_off_describe((enum trust_off)(1u << b))));
	json_object_set_new(o, "turned_off", off);
	return o;
}

int cmd_config(int argc, char **argv)
{
	struct rec_load_opts lo = { 0 };
	struct rec_loaded ld = { 0 };
	int json = 0, rc = REC_EXIT_ERROR;

	if (rec_parse_load_args("config", argc, argv, &lo, &json) < 0)
		return REC_EXIT_ERROR;
	if (rec_load(&ld, &lo) < 0)
		goto out;
	if (json) {
		json_t *o = config_json(ld.config);
		if (json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
			rc = REC_EXIT_ERROR;
		else
			rc = REC_EXIT_OK;
		putchar('\n');
		json_decref(o);
	} else {
		rc = print_text_escaped(ld.config);
	}
	rec_report_trust(ld.config, stderr);
out:
	rec_loaded_release(&ld);
	return rc;
}
