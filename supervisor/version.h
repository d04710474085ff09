#ifndef BATON_VERSION_H
#define BATON_VERSION_H

#ifndef BATON_VERSION /* a test build sets its own */
#define BATON_VERSION "0.1.0"
#endif
#define BATON_DEFAULT_CONFIG "/etc/baton/baton.ini"
#define BATON_DEFAULT_CONTROL "/run/baton/batond.sock"

#endif
