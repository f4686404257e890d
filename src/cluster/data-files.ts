/**
 * Names of the secret files `tessera init` writes into a data directory. Apart from the code
 * that reads them, so a client command can find the API token without loading the identity
 * code and its schema library.
 */
export const IDENTITY_FILE = 'identity.json';
export const CLUSTER_FILE = 'cluster.json';
export const API_TOKEN_FILE = 'api-token';
/** A join token is small; anything much longer is not one. */
export const MAX_JOIN_TOKEN_CHARS = 512;
