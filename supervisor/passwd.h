/*
 * passwd.h — `ringmqctl passwd`: add or change a user's line in a password file (mosquitto_passwd format,
 * common/pwfile.h), or print the line.
 *
 *   ringmqctl passwd [-c] [--stdin] [--iterations N] FILE USER
 *   ringmqctl passwd [--stdin] [--iterations N] USER            (prints the line)
 *
 * The password is asked twice on the terminal (not echoed), or read as the first line of standard input with
 * --stdin. The file is rewritten through a temporary file and rename(2), keeping its other lines and its mode
 * (0600 for a new file); -c starts a new file. The broker reads it on SIGHUP / `ringmqctl reload`.
 * ringmqctl only.
 */
#ifndef RINGMQ_SUPERVISOR_PASSWD_H
#define RINGMQ_SUPERVISOR_PASSWD_H

/* argv[0] is "passwd". Returns the exit status: 0, 1 (cannot read the password, cannot write the file),
 * 2 (usage). Messages go to stderr. */
int passwd_main(int argc, char **argv);

#endif
