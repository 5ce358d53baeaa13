/* Links against libtarget.so.1 and waits on stdin, so that a test can read
 * its /proc/PID/maps. */
#include <stdio.h>

int lt_api(int x);

int main(void)
{
	char buf[8];
	printf("ready %d\n", lt_api(1));
	fflush(stdout);
	if (fgets(buf, sizeof buf, stdin) == NULL)
		return 1;
	return 0;
}
