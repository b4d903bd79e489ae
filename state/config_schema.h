/*
 * Kamal's schema (../shared/kamal/schema/ *.yml) as a table, and a validator
 * that walks a parsed deploy.yml against it the way Kamal's validator does:
 * unknown keys are errors (with a suggestion for near misses), types follow
 * the example values (a "string" also accepts numbers, booleans and symbols,
 * as Kamal's stringish rule does), and every error is collected.
 */
#ifndef PLUMB_CONFIG_SCHEMA_H
#define PLUMB_CONFIG_SCHEMA_H

#include "state/util.h"
#include "state/yaml.h"

/* Validates the merged root; returns the number of errors added to d. */
size_t config_schema_validate(const struct ynode *root, struct diags *d);

#endif
