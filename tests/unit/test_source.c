/*
 * The one rule for reading a repository file on disk (state/source.h):
 * inside the repository after resolving links, a regular file, bounded, and
 * never blocking — and the config/secrets loaders going through it.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/config.h"
#include "state/source.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#define OUTSIDE_CANARY "outside-canary-9f3e"

struct fx {
	char *base; /* holds repo/ and outside/ */
	char *repo;
	char *outside;
};

static int fx_init(struct fx *f)
{
	f->base = tu_tmpdir("source");
	if (!f->base)
		return -1;
	f->repo = xasprintf("%s/repo", f->base);
	f->outside = xasprintf("%s/outside", f->base);
	mkdir(f->repo, 0700);
	mkdir(f->outside, 0700);
	tu_write_in(f->outside, "other.yml", "service: " OUTSIDE_CANARY "\n");
	tu_write_in(f->repo, "config/real.yml", "service: inside\n");
	return 0;
}

static void fx_free(struct fx *f)
{
	tu_rm_rf(f->base);
	free(f->base);
	free(f->repo);
	free(f->outside);
}

static void link_in(struct fx *f, const char *target, const char *rel)
{
	char *p = xasprintf("%s/%s", f->repo, rel);

	if (symlink(target, p) < 0)
		abort();
	free(p);
}

/* Reads rel with the rule; returns its code and leaves the message in *err. */
static int rd(struct fx *f, const char *rel, size_t max, char **text, struct plumb_err *err)
{
	size_t len = 0;
	int rc = source_read_inside(f->repo, rel, max, text, &len, err);

	if (rc == 0 && strlen(*text) != len)
		return 99;
	return rc;
}


/* rel is refused with code and a message naming it and saying `why`. */
#define REFUSED(f, rel, max, want, why)                                        \
	do {                                                                   \
		char *t_text_ = NULL;                                          \
		struct plumb_err t_err_ = { 0 };                               \
		T_INTEQ(rd((f), (rel), (max), &t_text_, &t_err_), (want));     \
		T_INTEQ(t_err_.code, (want));                                  \
		T_CHECK(t_text_ == NULL);                                      \
		T_CONTAINS(t_err_.msg, (rel));                                 \
		T_CONTAINS(t_err_.msg, (why));                                 \
		T_NOT_CONTAINS(t_err_.msg, (f)->outside);                      \
	} while (0)

T_TEST(plain_and_link_inside)
{
	struct fx f;
	char *text = NULL;
	struct plumb_err err = { 0 };

	T_REQUIRE(fx_init(&f) == 0);
	T_INTEQ(rd(&f, "config/real.yml", SOURCE_MAX_FILE, &text, &err), 0);
	T_STREQ(text, "service: inside\n");
	free(text);
	link_in(&f, "real.yml", "config/deploy.yml");
	T_INTEQ(rd(&f, "config/deploy.yml", SOURCE_MAX_FILE, &text, &err), 0);
	T_STREQ(text, "service: inside\n");
	free(text);
	/* a link through a directory that stays inside */
	link_in(&f, "config", "cfg");
	T_INTEQ(rd(&f, "cfg/deploy.yml", SOURCE_MAX_FILE, &text, &err), 0);
	T_STREQ(text, "service: inside\n");
	free(text);
	fx_free(&f);
}

/* Each case: make a link (target "@" = the outside file), then read `rel`
 * with `max` and expect a refusal saying `why`. Cases build on each other. */
static const struct refusal {
	const char *target, *link, *rel;
	size_t max;
	const char *why;
	int code;
} refusals[] = {
	{ "@", "config/deploy.yml", "config/deploy.yml", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	{ "../../outside/other.yml", "config/rel.yml", "config/rel.yml", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	{ "..", "up", "up/outside/other.yml", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	/* a chain: a -> b (inside) -> outside */
	{ "@", "config/b.yml", "config/b.yml", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	{ "b.yml", "config/a.yml", "config/a.yml", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	/* ".." components and absolute paths, lexically */
	{ NULL, NULL, "../outside/other.yml", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	{ NULL, NULL, "config/../../outside/other.yml", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	{ NULL, NULL, "/etc/passwd", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	/* a FIFO, directly and through a link that stays inside (never blocks:
	 * the test is killed by alarm if it does); a device outside */
	{ NULL, NULL, "pipe", SOURCE_MAX_FILE, "not a regular file", PLUMB_EOUTSIDE },
	{ "../pipe", "config/fifo.yml", "config/fifo.yml", SOURCE_MAX_FILE, "FIFO", PLUMB_EOUTSIDE },
	{ "/dev/zero", "zero", "zero", SOURCE_MAX_FILE, "outside the repository", PLUMB_EOUTSIDE },
	{ NULL, NULL, "config", SOURCE_MAX_FILE, "a directory", PLUMB_EOUTSIDE },
	{ "config", "cfgdir", "cfgdir", SOURCE_MAX_FILE, "a directory", PLUMB_EOUTSIDE },
	{ NULL, NULL, "config/real.yml", 4, "too large", PLUMB_ETOOBIG },
};

T_TEST(refused)
{
	struct fx f;
	char *target, *fifo;

	T_REQUIRE(fx_init(&f) == 0);
	target = xasprintf("%s/other.yml", f.outside);
	fifo = xasprintf("%s/pipe", f.repo);
	T_REQUIRE(mkfifo(fifo, 0600) == 0);
	alarm(10);
	for (size_t i = 0; i < ARRAY_SIZE(refusals); i++) {
		const struct refusal *r = &refusals[i];

		if (r->link)
			link_in(&f, strcmp(r->target, "@") == 0 ? target : r->target, r->link);
		REFUSED(&f, r->rel, r->max, r->code, r->why);
	}
	alarm(0);
	free(fifo);
	free(target);
	fx_free(&f);
}

T_TEST(dir_and_missing)
{
	struct fx f;
	char *text = NULL;
	struct plumb_err err = { 0 };

	T_REQUIRE(fx_init(&f) == 0);
	T_INTEQ(rd(&f, "config/none.yml", SOURCE_MAX_FILE, &text, &err), PLUMB_ENOTFOUND);
	T_INTEQ(err.code, PLUMB_ENOTFOUND);
	T_CONTAINS(err.msg, "config/none.yml");
	T_CHECK(text == NULL);
	link_in(&f, "nowhere.yml", "config/dangling.yml");
	T_INTEQ(rd(&f, "config/dangling.yml", SOURCE_MAX_FILE, &text, &err), PLUMB_ENOTFOUND);
	T_NOT_CONTAINS(err.msg, "nowhere.yml");
	fx_free(&f);
}

T_TEST(exact_size_read)
{
	struct fx f;
	char *text = NULL;
	struct plumb_err err = { 0 };

	T_REQUIRE(fx_init(&f) == 0);
	T_INTEQ(rd(&f, "config/real.yml", 16, &text, &err), 0); /* exactly 16 bytes */
	T_STREQ(text, "service: inside\n");
	free(text);
	fx_free(&f);
}

T_TEST(open_inside_gives_fd)
{
	struct fx f;
	struct plumb_err err = { 0 };
	char buf[8] = { 0 };
	int fd = -1;

	T_REQUIRE(fx_init(&f) == 0);
	T_INTEQ(source_open_inside(f.repo, "config/real.yml", 100, &fd, &err), 0);
	T_CHECK(fd >= 0);
	T_INTEQ(read(fd, buf, 7), 7);
	T_STREQ(buf, "service");
	close(fd);
	fx_free(&f);
}

/* Links repo/rel to outside/file, loads, and expects a refusal naming rel
 * that shows nothing of the outside file. */
static void load_refused(struct fx *f, int trusted, const char *file, const char *rel)
{
	struct source *src = NULL;
	struct config *c = NULL;
	struct config_opts o = { 0 };
	struct diags d = { 0 };
	char *target = xasprintf("%s/%s", f->outside, file), *msgs;

	link_in(f, target, rel);
	source_dir_new(&src, f->repo);
	o.trusted = trusted;
	T_INTEQ(config_load(&c, src, &o, &d), -1);
	msgs = diags_to_string(&d);
	T_CONTAINS(msgs, rel);
	T_CONTAINS(msgs, "outside the repository");
	T_NOT_CONTAINS(msgs, OUTSIDE_CANARY);
	free(msgs);
	diags_release(&d);
	source_free(src);
	free(target);
}

/* config_load, trusted as untrusted: deploy.yml and .kamal/secrets linked
 * out of the repository are refused. */
T_TEST(loader_refuses_links_out)
{
	for (int trusted = 0; trusted <= 1; trusted++) {
		struct fx f;

		T_REQUIRE(fx_init(&f) == 0);
		load_refused(&f, trusted, "other.yml", "config/deploy.yml");
		fx_free(&f);

		T_REQUIRE(fx_init(&f) == 0);
		tu_write_in(f.repo, "config/deploy.yml",
			    "service: app\nimage: app\nservers: [1.2.3.4]\n"
			    "registry: {server: r.example, username: u, password: [PW]}\n"
			    "builder: {arch: amd64}\n");
		tu_write_in(f.outside, "runner.env", "PW=" OUTSIDE_CANARY "\n");
		tu_write_in(f.repo, ".kamal/keep", "");
		load_refused(&f, trusted, "runner.env", ".kamal/secrets");
		fx_free(&f);
	}
}

T_MAIN(T_CASE(plain_and_link_inside), T_CASE(refused), T_CASE(dir_and_missing),
       T_CASE(exact_size_read), T_CASE(open_inside_gives_fd), T_CASE(loader_refuses_links_out))
