/* rds.c — placeholder: the Redis client lands with the Redis session store. */
#include "rds.h"

void rds_on_cqe(uint64_t ud, struct io_uring_cqe *cqe)
{
	(void)ud;
	(void)cqe;
}

void rds_flush_all(void)
{
}
