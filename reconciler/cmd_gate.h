/*
 * plumb observe-gate: the forced command of a read-only SSH key.
 *
 * A read-only run (plan, hosts) sends each host exactly one command, the
 * observation script (providers/docker_obs.h) framed by the transport
 * (providers/transport.h):
 *     sh -c '<framed: BEGIN markers; ( sh -c '<script>' plumb-observe ARGS ) ; END markers>'
 * which arrives on the host as $SSH_ORIGINAL_COMMAND. rec_gate_script writes
 * a POSIX sh script that accepts exactly that text, for this plumb's script
 * and framing, with a 32-hex token and ARGS of the shapes plumb sends
 * (SALT: 32 hex; APPDIR: a name; LOCKDIR: lock-APPDIR; then s:NAME / n:NAME
 * words; a name is [A-Za-z0-9][A-Za-z0-9._-]*), and then runs the command it
 * rebuilt from its own literals and those checked words. Anything else is
 * refused: message on stderr, `logger` when present, exit 1.
 */
#ifndef PLUMB_REC_CMD_GATE_H
#define PLUMB_REC_CMD_GATE_H

#include "state/util.h"

/* Appends the gate script to out. 0, or a negative code (out's bound reached). */
int rec_gate_script(struct sbuf *out);

#endif
