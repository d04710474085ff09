#ifndef BATON_VERSION_H
#define BATON_VERSION_H

#define BATON_VERSION "0.1.0"
#define BATON_DEFAULT_CONFIG "/etc/baton/baton.ini"
#define BATON_DEFAULT_CONTROL "/run/baton/batond.sock"

#endif
