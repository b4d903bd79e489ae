/*
 * fleet_tunnel's checks that need no host: the index and port, the read-only
 * refusal, and the local host (no tunnel needed). The tunnel itself runs
 * against real sshd hosts in tests/e2e/t_tunnel.c.
 */
#include "providers/fleet.h"
#include "providers/tunnel.h"
#include "tests/unit/t.h"

static struct fleet *fleet_of(const char *host, enum fleet_mode mode)
{
	static const char *hosts[1];
	struct fleet_opts o = { 0 };
	struct fleet *fl = NULL;

	hosts[0] = host;
	o.hosts = hosts;
	o.nhosts = 1;
	fleet_open(&fl, &o, mode);
	return fl;
}

T_TEST(read_only_fleet_refuses)
{
	struct fleet *fl = fleet_of("10.255.255.1", FLEET_READ_ONLY);
	struct plumb_err err = { 0 };

	T_INTEQ(fleet_tunnel(fl, 0, 5555, &err), PLUMB_EREFUSED);
	T_CONTAINS(err.msg, "read-only");
	T_INTEQ(fleet_connects(fl), 0);
	fleet_free(fl);
}

T_TEST(bad_index_and_port)
{
	struct fleet *fl = fleet_of("10.255.255.1", FLEET_READ_WRITE);
	struct plumb_err err = { 0 };

	T_INTEQ(fleet_tunnel(fl, 1, 5555, &err), PLUMB_EINVAL);
	T_INTEQ(fleet_tunnel(fl, 0, 0, &err), PLUMB_EINVAL);
	T_INTEQ(fleet_tunnel(fl, 0, 65536, &err), PLUMB_EINVAL);
	T_CONTAINS(err.msg, "65536");
	T_INTEQ(fleet_connects(fl), 0);
	fleet_free(fl);
}

T_TEST(local_host_needs_no_tunnel)
{
	struct plumb_err err = { 0 };

	for (int k = 0; k < 2; k++) {
		struct fleet *fl = fleet_of(k ? "127.0.0.1" : "localhost", FLEET_READ_WRITE);

		T_INTEQ(fleet_tunnel(fl, 0, 5555, &err), 0);
		T_STREQ(err.msg, "");
		T_INTEQ(fleet_connects(fl), 0);
		fleet_free(fl);
	}
}

T_TEST(tunnel_open_checks_the_port_first)
{
	struct transport_opts o = { 0 };
	struct tunnel *tn = (struct tunnel *)&o;
	struct plumb_err err = { 0 };

	o.host = "10.255.255.1";
	T_INTEQ(tunnel_open(&tn, &o, -1, &err), PLUMB_EINVAL);
	T_CHECK(tn == NULL);
	tunnel_close(NULL);
}

T_MAIN(T_CASE(read_only_fleet_refuses), T_CASE(bad_index_and_port),
       T_CASE(local_host_needs_no_tunnel), T_CASE(tunnel_open_checks_the_port_first))
