/* x-plumb accessories.<name>.pin_digest: the desired accessory runs image@digest and is compared by identity. */
#include "state/config.h"
#include "state/desired.h"
#include "state/source.h"
#include "state/util.h"
#include "tests/unit/t.h"
#include "tests/unit/tutil.h"

#include <string.h>

#define DIGEST "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define IDENT "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static const char yml[] =
	"service: app\nimage: dhh/app\nregistry:\n  username: user\n  password: pw\n"
	"servers: [10.0.0.1]\n"
	"accessories:\n"
	"  db:\n    image: postgres:17\n    host: 10.0.0.1\n"
	"  cache:\n    image: redis:7@sha256:9999999999999999999999999999999999999999999999999999999999999999\n"
	"    host: 10.0.0.1\n"
	"  search:\n    image: opensearch:2\n    host: 10.0.0.1\n"
	"x-plumb:\n  accessories:\n    db:\n      pin_digest: true\n    cache:\n      pin_digest: true\n"
	"    search:\n      pin_digest: false\n";

struct pins {
	int fail;
	struct strvec asked;
};

static int pin(const char *image_ref, const char **digest, const char **identity, void *ctx)
{
	struct pins *p = ctx;

	strvec_push(&p->asked, image_ref);
	if (p->fail)
		return -1;
	*digest = DIGEST;
	*identity = IDENT;
	return 0;
}

static struct config *load_cfg(void)
{
	struct config *c = NULL;
	struct source *src = NULL;
	struct diags d = { 0 };
	struct config_opts o = { 0 };
	char *dir = tu_tmpdir("test-pin");

	if (!dir)
		abort();
	tu_write_in(dir, "config/deploy.yml", yml);
	source_dir_new(&src, dir);
	if (config_load(&c, src, &o, &d) != 0) {
		diags_print(&d, stderr);
		c = NULL;
	}
	diags_release(&d);
	source_free(src);
	tu_rm_rf(dir);
	free(dir);
	return c;
}

static const struct des_container *acc(const struct desired *ds, const char *name)
{
	const struct des_host *h = desired_host(ds, "10.0.0.1");
	for (size_t i = 0; h && i < h->ncontainers; i++)
		if (h->containers[i].kind == DES_ACCESSORY && !strcmp(h->containers[i].role, name))
			return &h->containers[i];
	return NULL;
}

static struct desired *build(struct config *c, struct pins *p)
{
	struct desired_opts o = { 0 };
	struct desired *ds = NULL;
	struct diags d = { 0 };

	o.version = "v1";
	o.salt = "00112233445566778899aabbccddeeff";
	if (p) {
		o.accessory_pin = pin;
		o.accessory_ctx = p;
	}
	if (desired_build(&ds, c, &o, &d) != 0)
		ds = NULL;
	diags_release(&d);
	return ds;
}

T_TEST(pinned_accessory_runs_by_digest)
{
	struct config *c = load_cfg();
	struct pins p = { 0 };
	struct desired *ds;

	T_REQUIRE(c);
	ds = build(c, &p);
	T_REQUIRE(ds && acc(ds, "db") && acc(ds, "cache") && acc(ds, "search"));
	T_STREQ(acc(ds, "db")->image_ref, "postgres:17@" DIGEST);
	T_STREQ(acc(ds, "db")->image_id, IDENT);
	T_INTEQ(acc(ds, "db")->image_status, DES_IMAGE_FOUND);
	/* a digest written in the config is replaced by the tag's */
	T_STREQ(acc(ds, "cache")->image_ref, "redis:7@" DIGEST);
	/* pin_digest: false — by reference, never resolved */
	T_STREQ(acc(ds, "search")->image_ref, "opensearch:2");
	T_CHECK(acc(ds, "search")->image_id == NULL);
	T_INTEQ(acc(ds, "search")->image_status, DES_IMAGE_UNKNOWN);
	T_CHECK(strvec_contains(&p.asked, "postgres:17"));
	T_CHECK(!strvec_contains(&p.asked, "opensearch:2"));
	desired_free(ds);
	strvec_release(&p.asked);

	/* unresolved: the reference as configured, identity unknown */
	p.fail = 1;
	ds = build(c, &p);
	T_REQUIRE(ds && acc(ds, "db"));
	T_STREQ(acc(ds, "db")->image_ref, "postgres:17");
	T_INTEQ(acc(ds, "db")->image_status, DES_IMAGE_UNKNOWN);
	desired_free(ds);
	strvec_release(&p.asked);

	/* no hook: the same */
	ds = build(c, NULL);
	T_REQUIRE(ds && acc(ds, "db"));
	T_STREQ(acc(ds, "db")->image_ref, "postgres:17");
	desired_free(ds);
	config_free(c);
}

T_MAIN(T_CASE(pinned_accessory_runs_by_digest))
