/*
 * The git source: where plumb gets the revision it reconciles to, through
 * libgit2 (no shell-out to git).
 *
 * A git_src is opened on one of:
 *   - a local repository (a checkout or a bare repository) given by path;
 *     it is read as it is, never fetched into;
 *   - a URL (https://, ssh://, git://, file://, or scp-like user@host:path);
 *     it is fetched into a bare cache repository under opts.cache_dir, one
 *     directory per URL (userinfo stripped before hashing, so rotating a token
 *     keeps the cache). libgit2 1.5 has no shallow clone: the first fetch
 *     downloads the full history. The URL is used through an anonymous remote,
 *     so it (and any token in it) is never written to the cache's config, and
 *     as given: git's url.<base>.insteadOf rewriting is not applied.
 *
 * Layout of the cache: branches under refs/remotes/origin/<name>, tags under
 * refs/tags/<name>, any other ref asked for (refs/pull/7/head) under
 * refs/remotes/origin/<rest> (refs/remotes/origin/pull/7/head), and
 * refs/remotes/origin/HEAD pointing at the remote's default branch.
 *
 * Files are read from a commit's tree (git_src_source_at), never from a
 * working tree, except in working-tree mode (git_src_worktree) which serves a
 * checkout's directory the way Kamal does (with a dirty flag).
 *
 * Errors: every function returns 0 or a negative PLUMB_E* code (state/err.h)
 * and, on error, fills *err — a carrier the caller owns (may be NULL);
 * nothing to free. Codes: PLUMB_EOWNER (a local repository owned by another
 * user: see allow_foreign_owner), PLUMB_ENOTFOUND (no such repository, ref
 * or file), PLUMB_EAUTH (the remote refused our credentials, or asked for
 * some we do not have), PLUMB_EHOSTKEY, PLUMB_ETIMEOUT and PLUMB_ETOOBIG
 * (fetch bounds), PLUMB_ENETWORK (any other fetch failure), PLUMB_EOUTSIDE
 * (a path or link leaving the tree), else PLUMB_ERROR. Messages wrap
 * libgit2's own message (git_error_last()), and are scrubbed: URL userinfo
 * is replaced by "***" and the HTTPS token value never appears.
 *
 * Processes: opening and fetching a URL's cache hold an flock on
 * "<cache>.lock" beside it, so two plumb processes sharing a cache wait for
 * each other instead of interleaving ref updates.
 *
 * Threads: a git_src is used by one thread at a time. Sources returned by
 * git_src_source_at hold their own repository handle and may outlive the
 * git_src and be used from another thread.
 */
#ifndef PLUMB_GIT_SRC_H
#define PLUMB_GIT_SRC_H

#include <stddef.h>

#include "state/err.h"
#include "state/source.h"

struct git_src_opts {
	/* Path to a working tree or bare repository, or a URL. Required. */
	const char *location;
	/* Where URL caches live; NULL = $XDG_CACHE_HOME/plumb/repos or
	 * $HOME/.cache/plumb/repos. Unused for a local path. */
	const char *cache_dir;
	/* Default ref for git_src_fetch and git_src_resolve(g, NULL): a branch,
	 * a tag, a full or short sha, HEAD, or a full ref such as
	 * refs/pull/7/head. NULL = HEAD. */
	const char *ref;

	/* SSH: private key file (libssh2 does not read ~/.ssh/config, so the key
	 * is named here); optional public key file (NULL = libssh2 derives it);
	 * optional name of an environment variable holding the key passphrase.
	 * The user name comes from the URL, else "git". */
	const char *ssh_key;
	const char *ssh_pubkey;
	const char *ssh_passphrase_env;
	/* known_hosts file the server's host key must be in (plain host names
	 * or [host]:port; hashed |1| entries are not matched). NULL = libgit2's
	 * default, which checks ~/.ssh/known_hosts. */
	const char *ssh_known_hosts;
	/* HTTPS: the token is taken from the environment variable named
	 * token_env, else from the first line of token_file (never from the
	 * command line). https_user defaults to the URL's user, else
	 * "x-access-token" (accepted by GitHub and Gitea; GitLab takes any). */
	const char *token_env;
	const char *token_file;
	const char *https_user;
	/* CA bundle file and/or directory for HTTPS (NULL = system default).
	 * libgit2 keeps this process-wide: the last git_src_open with one wins. */
	const char *ca_file;
	const char *ca_path;

	/* Open a local repository owned by another user (a CI checkout made by a
	 * different uid). Off by default: libgit2 refuses such repositories like
	 * git does (CVE-2022-24765) unless git's safe.directory lists them. */
	int allow_foreign_owner;
	/* Upper bound on bytes received by one fetch; 0 = 1 GiB. */
	size_t max_fetch_bytes;
	/* Fetch deadline in seconds, checked as data arrives; 0 = 300. libgit2
	 * 1.5 has no socket timeout, so a server that sends nothing at all can
	 * still block until the kernel gives up. */
	unsigned fetch_timeout_s;
};

struct git_src;

/*
 * Opens a git source. No network I/O: for a URL, the cache repository is
 * created if needed and git_src_fetch must run before anything is resolved.
 * opts and its strings are copied; the caller keeps ownership of them.
 */
int git_src_open(struct git_src **out, const struct git_src_opts *opts, struct plumb_err *err);

/* 1 if the source is a URL fetched into a cache, 0 for a local repository. */
int git_src_is_remote(const struct git_src *g);

/* Directory of the repository being read (the cache for a URL). Owned by g. */
const char *git_src_repo_path(const struct git_src *g);

/*
 * Fetches branches, tags and opts.ref (when it is a ref outside heads/tags,
 * e.g. refs/pull/7/head) from the URL into the cache, pruning refs deleted on
 * the remote, and records the remote's default branch. A no-op for a local
 * repository. *fetched_bytes (if not NULL) receives the bytes received.
 */
int git_src_fetch(struct git_src *g, size_t *fetched_bytes, struct plumb_err *err);

/*
 * Resolves ref (NULL = opts.ref, else HEAD) to a commit and writes its full
 * sha (40 hex + NUL) to sha_out. A ref is "HEAD", a full ref name
 * ("refs/heads/main", "refs/tags/v1", "refs/pull/7/head"), a short name (a
 * branch first, then a tag: a GitOps source follows branches), or a full or
 * abbreviated (>= 4 hex) commit sha; revision expressions (main~1, @{u}) are
 * not accepted. For a URL, names resolve in the cache (see the layout above).
 * Annotated tags are peeled to their commit. PLUMB_ENOTFOUND if there is no
 * such ref.
 */
int git_src_resolve(struct git_src *g, const char *ref, char sha_out[41], struct plumb_err *err);

/*
 * A struct source reading files from the tree of commit sha (full or
 * abbreviated): root_dir is NULL; label is "<location>@<7 hex>" with URL
 * userinfo redacted. Files larger than SOURCE_MAX_FILE are refused; a missing
 * path, or a path through a non-directory, is PLUMB_ENOTFOUND; symbolic links
 * are followed only within the tree. Free with source_free; it does not
 * depend on g staying open.
 */
int git_src_source_at(struct git_src *g, const char *sha, struct source **out,
		      struct plumb_err *err);

/*
 * Writes the files of commit sha's tree into dir, which must not exist (it
 * is created 0700): what a command that runs repository code (Kamal's
 * hooks) needs from a commit read from the cache. The repository's index and
 * HEAD are not touched. 0 or a negative PLUMB_E* code.
 */
int git_src_export(struct git_src *g, const char *sha, const char *dir, struct plumb_err *err);

/*
 * Working-tree mode (a local checkout only): *out is source_dir_new on the
 * checkout's top directory (files as they are on disk, uncommitted edits
 * included), head_sha gets HEAD's commit, and *dirty is 1 when `git status`
 * would list anything (modified, staged, deleted or untracked files; ignored
 * files do not count) - Kamal then versions the build
 * "<sha>_uncommitted_<16 hex>".
 */
int git_src_worktree(struct git_src *g, struct source **out, char head_sha[41], int *dirty,
		     struct plumb_err *err);

/* Frees g; NULL is fine. Wipes the token. */
void git_src_free(struct git_src *g);

/*
 * Returns a copy of msg (caller frees) with the userinfo of every URL in it
 * replaced by "***" (so "user:tok@host" in a URL reads "***@host") and,
 * when secret is non-empty, every occurrence of secret replaced by "***".
 */
char *git_src_redact(const char *msg, const char *secret);

#endif
