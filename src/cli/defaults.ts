/** Default addresses, apart from the daemon module so the client commands load without libp2p */
export const DEFAULT_API = '/ip4/127.0.0.1/tcp/4051'
export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/4001'
