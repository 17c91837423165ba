/* ulpo.h (tools) - subcommands of the `ulpo` command. */
#ifndef ULPO_TOOLS_H
#define ULPO_TOOLS_H

int ulpo_cmd_stats(int argc, char **argv);
int ulpo_cmd_caps(int argc, char **argv);
int ulpo_cmd_demo(int argc, char **argv);
int ulpo_cmd_bench(int argc, char **argv);
int ulpo_cmd_run(int argc, char **argv);
int ulpo_cmd_nvme(int argc, char **argv);


#endif
